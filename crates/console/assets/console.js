// Live tables: every element with data-refresh="<url>" is replaced by the
// server-rendered fragment at that URL every two seconds while the page is
// visible. The fragments are HTML the server escaped; nothing else runs here.
(function () {
  "use strict";
  var EVERY_MS = 2000;
  function refresh(el) {
    if (document.hidden) return;
    fetch(el.getAttribute("data-refresh"), { credentials: "same-origin", headers: { "X-Console-Fragment": "1" } })
      .then(function (r) {
        // The session has ended: the page again, which goes to the login.
        if (r.status === 401) { window.location.reload(); return null; }
        return r.ok ? r.text() : null;
      })
      .then(function (html) {
        // Keep the user's place: not while they are in one of its forms.
        if (html !== null && !el.contains(document.activeElement)) el.innerHTML = html;
      })
      .catch(function () {});
  }
  // One click sends a form once: its button is disabled once the submit is under way.
  document.addEventListener("submit", function (e) {
    var button = e.target.querySelector("button[type=submit]");
    if (button) setTimeout(function () { button.disabled = true; }, 0);
  });
  document.addEventListener("DOMContentLoaded", function () {
    var live = document.querySelectorAll("[data-refresh]");
    live.forEach(function (el) { setInterval(function () { refresh(el); }, EVERY_MS); });
  });
})();
