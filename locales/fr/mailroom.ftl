## Layout
footer-sent-by = Envoyé par { $brand }.
footer-unsubscribe = Se désabonner
# What separates a label from its link in the text part ("Start: https://…").
text-link-colon = { "\u00A0" }:
link-fallback = Si le bouton ne fonctionne pas, copiez ce lien dans votre navigateur :
greeting = Bonjour,
greeting-name = Bonjour { $name },

## verification
verification-subject = Confirmez votre adresse e-mail
verification-preheader = Un clic pour confirmer votre adresse.
verification-heading = Confirmez votre adresse e-mail
verification-body = Veuillez confirmer qu’il s’agit bien de votre adresse en cliquant sur le bouton ci-dessous.
verification-button = Confirmer mon adresse
verification-expiry = { $minutes ->
    [one] Ce lien expire dans { $minutes } minute.
   *[other] Ce lien expire dans { $minutes } minutes.
}
verification-ignore = Si vous ne vous êtes pas inscrit, ignorez cet e-mail.

## welcome
welcome-subject = Bienvenue sur { $brand }, { $name } !
welcome-preheader = Votre compte est prêt.
welcome-heading = Bienvenue, { $name } !
welcome-body = Votre compte est prêt. Nous sommes ravis de vous compter parmi nous.
welcome-button = Commencer

## password_reset
password-reset-subject = Réinitialisez votre mot de passe
password-reset-preheader = Un lien pour choisir un nouveau mot de passe.
password-reset-heading = Réinitialisez votre mot de passe
password-reset-body = Nous avons reçu une demande de réinitialisation de votre mot de passe. Cliquez sur le bouton ci-dessous pour en choisir un nouveau.
password-reset-button = Choisir un nouveau mot de passe
password-reset-expiry = { $minutes ->
    [one] Ce lien expire dans { $minutes } minute.
   *[other] Ce lien expire dans { $minutes } minutes.
}
password-reset-not-you = Si vous n’êtes pas à l’origine de cette demande, ignorez cet e-mail : votre mot de passe reste inchangé.

## notification
notification-subject = { $title }

## newsletter
newsletter-subject = { $title }
newsletter-read-more = Lire la suite
newsletter-unsubscribe = Se désabonner de cette lettre d’information

## Confirmation pages
page-confirm-title = Confirmez votre adresse e-mail
page-confirm-intro = Confirmez que { $email } est bien votre adresse e-mail.
page-confirm-button = Confirmer mon adresse
page-verified-title = Votre adresse e-mail est confirmée
page-verified-body = Merci : { $email } est confirmée.
page-continue = Continuer
page-used-title = Cette adresse e-mail est déjà confirmée
page-used-body = Le lien a déjà servi ; il n’y a rien d’autre à faire.
page-expired-title = Ce lien a expiré ou a déjà été utilisé
page-expired-body = Demandez un nouvel e-mail de confirmation et utilisez le lien du plus récent.
page-invalid-title = Ce lien n’est pas valide
page-invalid-body = Vérifiez que vous avez ouvert le lien complet de l’e-mail.
page-back = Revenir

## Preference page (/u/TOKEN)
prefs-title = Vos préférences d’e-mail
prefs-intro = Choisissez les e-mails que { $email } reçoit.
prefs-state-confirmed = Abonné
prefs-state-unconfirmed = En attente de votre confirmation
prefs-state-unsubscribed = Désabonné
prefs-unsubscribe = Se désabonner
prefs-resubscribe = Se réabonner
prefs-unsubscribe-all = Se désabonner de tout
prefs-done-one = Vous êtes désabonné de { $list }.
prefs-done-again = Vous êtes de nouveau abonné à { $list }.
prefs-done-all = Vous êtes désabonné de tout : vous ne recevrez plus aucun e-mail de ces listes.
prefs-gone-title = Ce lien ne fonctionne plus
prefs-gone-body = Cette adresse n’est plus sur aucune liste ; il n’y a rien dont se désabonner.

## subscription_confirm
optin-subject = Confirmez votre abonnement à { $list }
optin-preheader = Un clic et vous êtes abonné.
optin-heading = Confirmez votre abonnement
optin-body = Vous avez demandé à recevoir { $list } à cette adresse. Confirmez pour commencer à le recevoir.
optin-button = Confirmer mon abonnement
optin-expiry = { $days ->
    [one] Ce lien expire dans { $days } jour.
   *[other] Ce lien expire dans { $days } jours.
}
optin-ignore = Si vous n’avez rien demandé, ignorez cet e-mail : vous ne serez pas abonné.

## Subscription pages (/subscribe)
page-optin-title = Confirmez votre abonnement
page-optin-intro = Confirmez que { $email } doit recevoir { $list }.
page-optin-button = Confirmer mon abonnement
page-optin-done-title = Vous êtes abonné
page-optin-done-body = { $email } recevra { $list }.
form-title = S’abonner à { $list }
form-email = Adresse e-mail
form-name = Votre nom (facultatif)
form-button = S’abonner
form-check-title = Consultez votre boîte de réception
form-check-body = Si { $email } peut recevoir { $list }, un lien de confirmation est en route. Ouvrez-le pour terminer l’abonnement.
