## Layout
footer-sent-by = أُرسلت بواسطة { $brand }.
footer-unsubscribe = إلغاء الاشتراك
# What separates a label from its link in the text part ("Start: https://…").
text-link-colon = :
link-fallback = إذا لم يعمل الزر، فانسخ هذا الرابط في متصفحك:
greeting = مرحبًا،
greeting-name = مرحبًا { $name }،

## verification
verification-subject = أكّد عنوان بريدك الإلكتروني
verification-preheader = نقرة واحدة لتأكيد عنوانك.
verification-heading = أكّد عنوان بريدك الإلكتروني
verification-body = يُرجى تأكيد أن هذا هو عنوان بريدك الإلكتروني بالنقر على الزر أدناه.
verification-button = تأكيد عنواني
verification-expiry = { $minutes ->
    [zero] تنتهي صلاحية هذا الرابط الآن.
    [one] تنتهي صلاحية هذا الرابط خلال دقيقة واحدة.
    [two] تنتهي صلاحية هذا الرابط خلال دقيقتين.
    [few] تنتهي صلاحية هذا الرابط خلال { $minutes } دقائق.
    [many] تنتهي صلاحية هذا الرابط خلال { $minutes } دقيقة.
   *[other] تنتهي صلاحية هذا الرابط خلال { $minutes } دقيقة.
}
verification-ignore = إذا لم تقم بالتسجيل، يمكنك تجاهل هذه الرسالة.

## welcome
welcome-subject = مرحبًا بك في { $brand } يا { $name }!
welcome-preheader = حسابك جاهز.
welcome-heading = أهلًا بك يا { $name }!
welcome-body = حسابك جاهز. يسعدنا انضمامك إلينا.
welcome-button = ابدأ الآن

## password_reset
password-reset-subject = أعد تعيين كلمة المرور
password-reset-preheader = رابط لاختيار كلمة مرور جديدة.
password-reset-heading = أعد تعيين كلمة المرور
password-reset-body = تلقّينا طلبًا لإعادة تعيين كلمة المرور الخاصة بك. انقر على الزر أدناه لاختيار كلمة مرور جديدة.
password-reset-button = اختيار كلمة مرور جديدة
password-reset-expiry = { $minutes ->
    [zero] تنتهي صلاحية هذا الرابط الآن.
    [one] تنتهي صلاحية هذا الرابط خلال دقيقة واحدة.
    [two] تنتهي صلاحية هذا الرابط خلال دقيقتين.
    [few] تنتهي صلاحية هذا الرابط خلال { $minutes } دقائق.
    [many] تنتهي صلاحية هذا الرابط خلال { $minutes } دقيقة.
   *[other] تنتهي صلاحية هذا الرابط خلال { $minutes } دقيقة.
}
password-reset-not-you = إذا لم تكن أنت من طلب ذلك، فتجاهل هذه الرسالة: ستبقى كلمة المرور دون تغيير.

## notification
notification-subject = { $title }

## newsletter
newsletter-subject = { $title }
newsletter-read-more = اقرأ المزيد
newsletter-unsubscribe = إلغاء الاشتراك في هذه النشرة

## Confirmation pages
page-confirm-title = أكّد عنوان بريدك الإلكتروني
page-confirm-intro = أكّد أن { $email } هو عنوان بريدك الإلكتروني.
page-confirm-button = تأكيد عنواني
page-verified-title = تم تأكيد عنوان بريدك الإلكتروني
page-verified-body = شكرًا لك: تم تأكيد { $email }.
page-continue = متابعة
page-used-title = تم تأكيد عنوان البريد الإلكتروني هذا بالفعل
page-used-body = سبق استخدام الرابط؛ لا حاجة إلى فعل أي شيء آخر.
page-expired-title = انتهت صلاحية هذا الرابط أو سبق استخدامه
page-expired-body = اطلب رسالة تأكيد جديدة واستخدم الرابط الموجود في أحدثها.
page-invalid-title = هذا الرابط غير صالح
page-invalid-body = تحقّق من أنك فتحت الرابط كاملًا من الرسالة.
page-back = العودة

## Preference page (/u/TOKEN)
prefs-title = تفضيلات البريد الإلكتروني
prefs-intro = اختر الرسائل التي يتلقاها { $email }.
prefs-state-confirmed = مشترك
prefs-state-unconfirmed = بانتظار تأكيدك
prefs-state-unsubscribed = أُلغي الاشتراك
prefs-unsubscribe = إلغاء الاشتراك
prefs-resubscribe = الاشتراك من جديد
prefs-unsubscribe-all = إلغاء الاشتراك في كل شيء
prefs-done-one = تم إلغاء اشتراكك في { $list }.
prefs-done-again = أصبحت مشتركًا في { $list } من جديد.
prefs-done-all = تم إلغاء اشتراكك في كل شيء: لن تصلك رسائل أخرى من هذه القوائم.
prefs-gone-title = لم يعد هذا الرابط يعمل
prefs-gone-body = هذا العنوان لم يعد في أي قائمة؛ لا يوجد ما يُلغى الاشتراك فيه.

## subscription_confirm
optin-subject = أكّد اشتراكك في { $list }
optin-preheader = نقرة واحدة ويكتمل اشتراكك.
optin-heading = أكّد اشتراكك
optin-body = طلبت تلقي { $list } على هذا العنوان. أكّد لتبدأ في تلقيه.
optin-button = تأكيد اشتراكي
optin-expiry = { $days ->
    [zero] تنتهي صلاحية هذا الرابط خلال { $days } يوم.
    [one] تنتهي صلاحية هذا الرابط خلال يوم واحد.
    [two] تنتهي صلاحية هذا الرابط خلال يومين.
    [few] تنتهي صلاحية هذا الرابط خلال { $days } أيام.
   *[other] تنتهي صلاحية هذا الرابط خلال { $days } يومًا.
}
optin-ignore = إذا لم تطلب ذلك فتجاهل هذه الرسالة: لن يتم اشتراكك.

## Subscription pages (/subscribe)
page-optin-title = أكّد اشتراكك
page-optin-intro = أكّد أن { $email } يجب أن يتلقى { $list }.
page-optin-button = تأكيد اشتراكي
page-optin-done-title = تم اشتراكك
page-optin-done-body = سيتلقى { $email } { $list }.
form-title = اشترك في { $list }
form-email = البريد الإلكتروني
form-name = اسمك (اختياري)
form-button = اشترك
form-check-title = تفقّد بريدك الوارد
form-check-body = إذا كان بإمكان { $email } تلقي { $list } فقد أرسلنا رابط تأكيد. افتحه لإكمال الاشتراك.
