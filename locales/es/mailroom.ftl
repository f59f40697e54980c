## Layout
footer-sent-by = Enviado por { $brand }.
footer-unsubscribe = Darse de baja
# What separates a label from its link in the text part ("Start: https://…").
text-link-colon = :
link-fallback = Si el botón no funciona, copia este enlace en tu navegador:
greeting = Hola:
greeting-name = Hola, { $name }:

## verification
verification-subject = Confirma tu dirección de correo electrónico
verification-preheader = Un clic para confirmar tu dirección.
verification-heading = Confirma tu dirección de correo electrónico
verification-body = Confirma que esta es tu dirección de correo electrónico haciendo clic en el botón de abajo.
verification-button = Confirmar mi dirección
verification-expiry = { $minutes ->
    [one] Este enlace caduca en { $minutes } minuto.
   *[other] Este enlace caduca en { $minutes } minutos.
}
verification-ignore = Si no te has registrado, puedes ignorar este correo.

## welcome
welcome-subject = ¡Te damos la bienvenida a { $brand }, { $name }!
welcome-preheader = Tu cuenta está lista.
welcome-heading = ¡Bienvenido, { $name }!
welcome-body = Tu cuenta está lista. Nos alegra tenerte con nosotros.
welcome-button = Empezar

## password_reset
password-reset-subject = Restablece tu contraseña
password-reset-preheader = Un enlace para elegir una nueva contraseña.
password-reset-heading = Restablece tu contraseña
password-reset-body = Hemos recibido una solicitud para restablecer tu contraseña. Haz clic en el botón de abajo para elegir una nueva.
password-reset-button = Elegir una nueva contraseña
password-reset-expiry = { $minutes ->
    [one] Este enlace caduca en { $minutes } minuto.
   *[other] Este enlace caduca en { $minutes } minutos.
}
password-reset-not-you = Si no has sido tú, ignora este correo: tu contraseña no cambiará.

## notification
notification-subject = { $title }

## newsletter
newsletter-subject = { $title }
newsletter-read-more = Leer más
newsletter-unsubscribe = Darse de baja de este boletín

## Confirmation pages
page-confirm-title = Confirma tu dirección de correo electrónico
page-confirm-intro = Confirma que { $email } es tu dirección de correo electrónico.
page-confirm-button = Confirmar mi dirección
page-verified-title = Tu dirección de correo electrónico está confirmada
page-verified-body = Gracias: { $email } está confirmada.
page-continue = Continuar
page-used-title = Esta dirección de correo ya está confirmada
page-used-body = El enlace ya se usó; no hace falta hacer nada más.
page-expired-title = Este enlace ha caducado o ya se ha usado
page-expired-body = Pide un nuevo correo de confirmación y usa el enlace del más reciente.
page-invalid-title = Este enlace no es válido
page-invalid-body = Comprueba que has abierto el enlace completo del correo.
page-back = Volver

## Preference page (/u/TOKEN)
prefs-title = Tus preferencias de correo
prefs-intro = Elige qué correos recibe { $email }.
prefs-state-confirmed = Suscrito
prefs-state-unconfirmed = Esperando tu confirmación
prefs-state-unsubscribed = Baja
prefs-unsubscribe = Darse de baja
prefs-resubscribe = Suscribirse de nuevo
prefs-unsubscribe-all = Darse de baja de todo
prefs-done-one = Te has dado de baja de { $list }.
prefs-done-again = Vuelves a estar suscrito a { $list }.
prefs-done-all = Te has dado de baja de todo: no recibirás más correos de estas listas.
prefs-gone-title = Este enlace ya no funciona
prefs-gone-body = Esta dirección ya no está en ninguna lista; no hay nada de lo que darse de baja.

## subscription_confirm
optin-subject = Confirma tu suscripción a { $list }
optin-preheader = Un clic y quedarás suscrito.
optin-heading = Confirma tu suscripción
optin-body = Pediste recibir { $list } en esta dirección. Confirma para empezar a recibirlo.
optin-button = Confirmar mi suscripción
optin-expiry = { $days ->
    [one] Este enlace caduca en { $days } día.
   *[other] Este enlace caduca en { $days } días.
}
optin-ignore = Si no lo pediste, ignora este correo: no quedarás suscrito.

## Subscription pages (/subscribe)
page-optin-title = Confirma tu suscripción
page-optin-intro = Confirma que { $email } debe recibir { $list }.
page-optin-button = Confirmar mi suscripción
page-optin-done-title = Ya estás suscrito
page-optin-done-body = { $email } recibirá { $list }.
form-title = Suscríbete a { $list }
form-email = Correo electrónico
form-name = Tu nombre (opcional)
form-button = Suscribirme
form-check-title = Revisa tu bandeja de entrada
form-check-body = Si { $email } puede recibir { $list }, te hemos enviado un enlace de confirmación. Ábrelo para terminar la suscripción.
