## Layout
footer-sent-by = Enviado por { $brand }.
footer-unsubscribe = Cancelar inscrição
# What separates a label from its link in the text part ("Start: https://…").
text-link-colon = :
link-fallback = Se o botão não funcionar, copie este link no seu navegador:
greeting = Olá,
greeting-name = Olá, { $name },

## verification
verification-subject = Confirme seu endereço de e-mail
verification-preheader = Um clique para confirmar seu endereço.
verification-heading = Confirme seu endereço de e-mail
verification-body = Confirme que este é o seu endereço de e-mail clicando no botão abaixo.
verification-button = Confirmar meu endereço
verification-expiry = { $minutes ->
    [one] Este link expira em { $minutes } minuto.
   *[other] Este link expira em { $minutes } minutos.
}
verification-ignore = Se você não se cadastrou, pode ignorar este e-mail.

## welcome
welcome-subject = Boas-vindas ao { $brand }, { $name }!
welcome-preheader = Sua conta está pronta.
welcome-heading = Boas-vindas, { $name }!
welcome-body = Sua conta está pronta. Ficamos felizes em ter você conosco.
welcome-button = Começar

## password_reset
password-reset-subject = Redefina sua senha
password-reset-preheader = Um link para escolher uma nova senha.
password-reset-heading = Redefina sua senha
password-reset-body = Recebemos um pedido para redefinir sua senha. Clique no botão abaixo para escolher uma nova.
password-reset-button = Escolher uma nova senha
password-reset-expiry = { $minutes ->
    [one] Este link expira em { $minutes } minuto.
   *[other] Este link expira em { $minutes } minutos.
}
password-reset-not-you = Se não foi você, ignore este e-mail: sua senha continua a mesma.

## notification
notification-subject = { $title }

## newsletter
newsletter-subject = { $title }
newsletter-read-more = Leia mais
newsletter-unsubscribe = Cancelar a inscrição nesta newsletter

## Confirmation pages
page-confirm-title = Confirme seu endereço de e-mail
page-confirm-intro = Confirme que { $email } é o seu endereço de e-mail.
page-confirm-button = Confirmar meu endereço
page-verified-title = Seu endereço de e-mail foi confirmado
page-verified-body = Obrigado: { $email } está confirmado.
page-continue = Continuar
page-used-title = Este endereço de e-mail já está confirmado
page-used-body = O link já foi usado; não é preciso fazer mais nada.
page-expired-title = Este link expirou ou já foi usado
page-expired-body = Peça um novo e-mail de confirmação e use o link do mais recente.
page-invalid-title = Este link não é válido
page-invalid-body = Verifique se você abriu o link completo do e-mail.
page-back = Voltar
