## Layout
footer-sent-by = Gesendet von { $brand }.
footer-unsubscribe = Abmelden
# What separates a label from its link in the text part ("Start: https://…").
text-link-colon = :
link-fallback = Falls die Schaltfläche nicht funktioniert, kopieren Sie diesen Link in Ihren Browser:
greeting = Hallo,
greeting-name = Hallo { $name },

## verification
verification-subject = Bestätigen Sie Ihre E-Mail-Adresse
verification-preheader = Ein Klick, um Ihre Adresse zu bestätigen.
verification-heading = Bestätigen Sie Ihre E-Mail-Adresse
verification-body = Bitte bestätigen Sie mit einem Klick auf die Schaltfläche unten, dass dies Ihre E-Mail-Adresse ist.
verification-button = Adresse bestätigen
verification-expiry = { $minutes ->
    [one] Dieser Link läuft in { $minutes } Minute ab.
   *[other] Dieser Link läuft in { $minutes } Minuten ab.
}
verification-ignore = Wenn Sie sich nicht registriert haben, können Sie diese E-Mail ignorieren.

## welcome
welcome-subject = Willkommen bei { $brand }, { $name }!
welcome-preheader = Ihr Konto ist bereit.
welcome-heading = Willkommen, { $name }!
welcome-body = Ihr Konto ist bereit. Schön, dass Sie dabei sind.
welcome-button = Loslegen

## password_reset
password-reset-subject = Setzen Sie Ihr Passwort zurück
password-reset-preheader = Ein Link, um ein neues Passwort zu wählen.
password-reset-heading = Setzen Sie Ihr Passwort zurück
password-reset-body = Wir haben eine Anfrage zum Zurücksetzen Ihres Passworts erhalten. Klicken Sie auf die Schaltfläche unten, um ein neues zu wählen.
password-reset-button = Neues Passwort wählen
password-reset-expiry = { $minutes ->
    [one] Dieser Link läuft in { $minutes } Minute ab.
   *[other] Dieser Link läuft in { $minutes } Minuten ab.
}
password-reset-not-you = Wenn Sie das nicht waren, ignorieren Sie diese E-Mail: Ihr Passwort bleibt unverändert.

## notification
notification-subject = { $title }

## newsletter
newsletter-subject = { $title }
newsletter-read-more = Weiterlesen
newsletter-unsubscribe = Von diesem Newsletter abmelden

## Confirmation pages
page-confirm-title = Bestätigen Sie Ihre E-Mail-Adresse
page-confirm-intro = Bestätigen Sie, dass { $email } Ihre E-Mail-Adresse ist.
page-confirm-button = Adresse bestätigen
page-verified-title = Ihre E-Mail-Adresse ist bestätigt
page-verified-body = Vielen Dank: { $email } ist bestätigt.
page-continue = Weiter
page-used-title = Diese E-Mail-Adresse ist bereits bestätigt
page-used-body = Der Link wurde schon verwendet; es ist nichts weiter zu tun.
page-expired-title = Dieser Link ist abgelaufen oder wurde bereits verwendet
page-expired-body = Fordern Sie eine neue Bestätigungs-E-Mail an und verwenden Sie den Link aus der neuesten.
page-invalid-title = Dieser Link ist ungültig
page-invalid-body = Prüfen Sie, ob Sie den vollständigen Link aus der E-Mail geöffnet haben.
page-back = Zurück

## Preference page (/u/TOKEN)
prefs-title = Ihre E-Mail-Einstellungen
prefs-intro = Wählen Sie, welche E-Mails { $email } erhält.
prefs-state-confirmed = Abonniert
prefs-state-unconfirmed = Wartet auf Ihre Bestätigung
prefs-state-unsubscribed = Abgemeldet
prefs-unsubscribe = Abmelden
prefs-resubscribe = Wieder abonnieren
prefs-unsubscribe-all = Von allem abmelden
prefs-done-one = Sie sind von { $list } abgemeldet.
prefs-done-again = Sie haben { $list } wieder abonniert.
prefs-done-all = Sie sind von allem abgemeldet: Von diesen Listen erreichen Sie keine E-Mails mehr.
prefs-gone-title = Dieser Link funktioniert nicht mehr
prefs-gone-body = Diese Adresse steht auf keiner Liste mehr; es gibt nichts abzumelden.

## subscription_confirm
optin-subject = Bestätigen Sie Ihr Abonnement von { $list }
optin-preheader = Ein Klick, und Sie sind angemeldet.
optin-heading = Bestätigen Sie Ihr Abonnement
optin-body = Sie möchten { $list } an diese Adresse erhalten. Bestätigen Sie, um es zu beziehen.
optin-button = Abonnement bestätigen
optin-expiry = { $days ->
    [one] Dieser Link läuft in { $days } Tag ab.
   *[other] Dieser Link läuft in { $days } Tagen ab.
}
optin-ignore = Wenn Sie das nicht angefordert haben, ignorieren Sie diese E-Mail: Sie werden nicht angemeldet.

## Subscription pages (/subscribe)
page-optin-title = Bestätigen Sie Ihr Abonnement
page-optin-intro = Bestätigen Sie, dass { $email } { $list } erhalten soll.
page-optin-button = Abonnement bestätigen
page-optin-done-title = Sie sind angemeldet
page-optin-done-body = { $email } erhält { $list }.
form-title = { $list } abonnieren
form-email = E-Mail-Adresse
form-name = Ihr Name (optional)
form-button = Abonnieren
form-check-title = Sehen Sie in Ihrem Posteingang nach
form-check-body = Wenn { $email } { $list } erhalten kann, ist ein Bestätigungslink unterwegs. Öffnen Sie ihn, um die Anmeldung abzuschließen.
