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
