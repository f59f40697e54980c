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

## Preference page (/u/TOKEN)
prefs-title = Your email preferences
prefs-intro = Choose which emails { $email } receives.
prefs-state-confirmed = Subscribed
prefs-state-unconfirmed = Waiting for your confirmation
prefs-state-unsubscribed = Unsubscribed
prefs-unsubscribe = Unsubscribe
prefs-resubscribe = Subscribe again
prefs-unsubscribe-all = Unsubscribe from everything
prefs-done-one = You are unsubscribed from { $list }.
prefs-done-again = You are subscribed to { $list } again.
prefs-done-all = You are unsubscribed from everything: no more emails from these lists will reach you.
prefs-gone-title = This link no longer works
prefs-gone-body = This address is no longer on any list; there is nothing to unsubscribe from.

## subscription_confirm
optin-subject = Confirm your subscription to { $list }
optin-preheader = One click and you are subscribed.
optin-heading = Confirm your subscription
optin-body = You asked to receive { $list } at this address. Confirm to start receiving it.
optin-button = Confirm my subscription
optin-expiry = { $days ->
    [one] This link expires in { $days } day.
   *[other] This link expires in { $days } days.
}
optin-ignore = If you did not ask for this, ignore this email: you will not be subscribed.

## Subscription pages (/subscribe)
page-optin-title = Confirm your subscription
page-optin-intro = Confirm that { $email } should receive { $list }.
page-optin-button = Confirm my subscription
page-optin-done-title = You are subscribed
page-optin-done-body = { $email } will receive { $list }.
form-title = Subscribe to { $list }
form-email = Email address
form-name = Your name (optional)
form-button = Subscribe
form-check-title = Check your inbox
form-check-body = If { $email } can receive { $list }, a confirmation link is on its way. Open it to finish subscribing.
