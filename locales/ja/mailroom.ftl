## Layout
footer-sent-by = { $brand } より送信されました。
footer-unsubscribe = 配信停止
# What separates a label from its link in the text part ("Start: https://…").
text-link-colon = ：
link-fallback = ボタンが機能しない場合は、このリンクをブラウザにコピーしてください:
greeting = こんにちは。
greeting-name = { $name } 様

## verification
verification-subject = メールアドレスの確認
verification-preheader = ワンクリックでアドレスを確認できます。
verification-heading = メールアドレスを確認してください
verification-body = 下のボタンをクリックして、このメールアドレスがご本人のものであることを確認してください。
verification-button = アドレスを確認する
verification-expiry = { $minutes ->
   *[other] このリンクの有効期限は { $minutes } 分です。
}
verification-ignore = ご登録に心当たりがない場合は、このメールを無視してください。

## welcome
welcome-subject = { $brand } へようこそ、{ $name } 様！
welcome-preheader = アカウントの準備ができました。
welcome-heading = ようこそ、{ $name } 様！
welcome-body = アカウントの準備ができました。ご参加いただきありがとうございます。
welcome-button = はじめる

## password_reset
password-reset-subject = パスワードの再設定
password-reset-preheader = 新しいパスワードを設定するためのリンクです。
password-reset-heading = パスワードを再設定してください
password-reset-body = パスワード再設定のリクエストを受け付けました。下のボタンをクリックして新しいパスワードを設定してください。
password-reset-button = 新しいパスワードを設定する
password-reset-expiry = { $minutes ->
   *[other] このリンクの有効期限は { $minutes } 分です。
}
password-reset-not-you = お心当たりがない場合は、このメールを無視してください。パスワードは変更されません。

## notification
notification-subject = { $title }

## newsletter
newsletter-subject = { $title }
newsletter-read-more = 続きを読む
newsletter-unsubscribe = このニュースレターの配信を停止する

## Confirmation pages
page-confirm-title = メールアドレスの確認
page-confirm-intro = { $email } があなたのメールアドレスであることを確認してください。
page-confirm-button = アドレスを確認する
page-verified-title = メールアドレスが確認されました
page-verified-body = ありがとうございます。{ $email } が確認されました。
page-continue = 続ける
page-used-title = このメールアドレスは確認済みです
page-used-body = このリンクは使用済みです。これ以上の操作は必要ありません。
page-expired-title = このリンクは有効期限切れか、すでに使用されています
page-expired-body = 確認メールを再度リクエストし、最新のメールのリンクを使用してください。
page-invalid-title = このリンクは無効です
page-invalid-body = メールのリンクを最後まで正しく開いたか確認してください。
page-back = 戻る

## Preference page (/u/TOKEN)
prefs-title = メール配信の設定
prefs-intro = { $email } が受け取るメールを選んでください。
prefs-state-confirmed = 購読中
prefs-state-unconfirmed = 確認待ち
prefs-state-unsubscribed = 配信停止
prefs-unsubscribe = 配信を停止する
prefs-resubscribe = もう一度購読する
prefs-unsubscribe-all = すべての配信を停止する
prefs-done-one = { $list } の配信を停止しました。
prefs-done-again = { $list } の購読を再開しました。
prefs-done-all = すべての配信を停止しました。これらのリストからのメールは今後届きません。
prefs-gone-title = このリンクは無効になりました
prefs-gone-body = このアドレスはどのリストにも登録されていないため、停止する配信はありません。

## subscription_confirm
optin-subject = { $list } の購読を確認してください
optin-preheader = ワンクリックで購読が完了します。
optin-heading = 購読の確認
optin-body = このアドレスで { $list } の受け取りが申し込まれました。確認すると配信が始まります。
optin-button = 購読を確認する
optin-expiry = { $days ->
   *[other] このリンクの有効期限は { $days } 日です。
}
optin-ignore = お心当たりがない場合は、このメールを無視してください。購読は登録されません。

## Subscription pages (/subscribe)
page-optin-title = 購読の確認
page-optin-intro = { $email } で { $list } を受け取ることを確認してください。
page-optin-button = 購読を確認する
page-optin-done-title = 購読が完了しました
page-optin-done-body = { $email } に { $list } が届きます。
form-title = { $list } を購読する
form-email = メールアドレス
form-name = お名前（任意）
form-button = 購読する
form-check-title = 受信箱をご確認ください
form-check-body = { $email } が { $list } を受け取れる場合、確認リンクをお送りしました。リンクを開いて登録を完了してください。
