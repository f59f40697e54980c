## Layout
footer-sent-by = Sent by { $brand }.
footer-unsubscribe = Unsubscribe
# What separates a label from its link in the text part ("Start: https://…").
text-link-colon = :
link-fallback = If the button does not work, copy this link into your browser:
greeting = Hello,
greeting-name = Hello { $name },

## verification
verification-subject = Confirm your email address
verification-preheader = One click to confirm your address.
verification-heading = Confirm your email address
verification-body = Please confirm that this is your email address by clicking the button below.
verification-button = Confirm my address
verification-expiry = { $minutes ->
    [one] This link expires in { $minutes } minute.
   *[other] This link expires in { $minutes } minutes.
}
verification-ignore = If you did not sign up, you can ignore this email.

## welcome
welcome-subject = Welcome to { $brand }, { $name }!
welcome-preheader = Your account is ready.
welcome-heading = Welcome, { $name }!
welcome-body = Your account is ready. We are glad to have you with us.
welcome-button = Get started

## password_reset
password-reset-subject = Reset your password
password-reset-preheader = A link to choose a new password.
password-reset-heading = Reset your password
password-reset-body = We received a request to reset your password. Click the button below to choose a new one.
password-reset-button = Choose a new password
password-reset-expiry = { $minutes ->
    [one] This link expires in { $minutes } minute.
   *[other] This link expires in { $minutes } minutes.
}
password-reset-not-you = If this wasn't you, ignore this email: your password stays unchanged.

## notification
notification-subject = { $title }

## newsletter
newsletter-subject = { $title }
newsletter-read-more = Read more
newsletter-unsubscribe = Unsubscribe from this newsletter

## Confirmation pages
page-confirm-title = Confirm your email address
page-confirm-intro = Confirm that { $email } is your email address.
page-confirm-button = Confirm my address
page-verified-title = Your email address is verified
page-verified-body = Thank you: { $email } is confirmed.
page-continue = Continue
page-used-title = This email address is already confirmed
page-used-body = The link was used; there is nothing more to do.
page-expired-title = This link has expired or was already used
page-expired-body = Ask for a new confirmation email and use the link in the newest one.
page-invalid-title = This link is not valid
page-invalid-body = Check that you opened the whole link from the email.
page-back = Go back
