// mailroom console: the live parts. Every element with `data-live` and an id is refreshed from
// the same page every few seconds while the tab is visible; everything works without this
// script (reload the page).
(function () {
  var live = document.querySelectorAll("[data-live][id]");
  if (!live.length) return;
  var every = 3000;
  function refresh() {
    if (document.hidden) return;
    fetch(window.location.href, { credentials: "same-origin", headers: { "X-Console-Live": "1" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        var fresh = new DOMParser().parseFromString(html, "text/html");
        document.querySelectorAll("[data-live][id]").forEach(function (el) {
          var next = fresh.getElementById(el.id);
          // Never replace what holds focus: a keyboard user keeps their place.
          if (next && !el.contains(document.activeElement)) el.replaceWith(next);
        });
      })
      .catch(function () {});
  }
  setInterval(refresh, every);
})();
