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

## Preference page (/u/TOKEN)
prefs-title = Suas preferências de e-mail
prefs-intro = Escolha quais e-mails { $email } recebe.
prefs-state-confirmed = Inscrito
prefs-state-unconfirmed = Aguardando sua confirmação
prefs-state-unsubscribed = Descadastrado
prefs-unsubscribe = Cancelar inscrição
prefs-resubscribe = Inscrever-se de novo
prefs-unsubscribe-all = Cancelar tudo
prefs-done-one = Sua inscrição em { $list } foi cancelada.
prefs-done-again = Você está inscrito em { $list } de novo.
prefs-done-all = Todas as suas inscrições foram canceladas: você não receberá mais e-mails destas listas.
prefs-gone-title = Este link não funciona mais
prefs-gone-body = Este endereço não está mais em nenhuma lista; não há nada a cancelar.

## subscription_confirm
optin-subject = Confirme sua inscrição em { $list }
optin-preheader = Um clique e você está inscrito.
optin-heading = Confirme sua inscrição
optin-body = Você pediu para receber { $list } neste endereço. Confirme para começar a receber.
optin-button = Confirmar minha inscrição
optin-expiry = { $days ->
    [one] Este link expira em { $days } dia.
   *[other] Este link expira em { $days } dias.
}
optin-ignore = Se você não pediu isso, ignore este e-mail: você não será inscrito.

## Subscription pages (/subscribe)
page-optin-title = Confirme sua inscrição
page-optin-intro = Confirme que { $email } deve receber { $list }.
page-optin-button = Confirmar minha inscrição
page-optin-done-title = Você está inscrito
page-optin-done-body = { $email } receberá { $list }.
form-title = Inscreva-se em { $list }
form-email = Endereço de e-mail
form-name = Seu nome (opcional)
form-button = Inscrever-me
form-check-title = Confira sua caixa de entrada
form-check-body = Se { $email } puder receber { $list }, um link de confirmação está a caminho. Abra-o para concluir a inscrição.
