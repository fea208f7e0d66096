// Workflow Runtime console: confirmations and live refresh. No framework, no build step.
(function () {
  "use strict";

  // Forms marked data-confirm ask before they post.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var question = form.getAttribute && form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  // A sign-in link carries the token in its fragment (never sent to the server or its logs):
  // fill the form with it. It is submitted at once only on this machine (`wfctl local up`): on a
  // shared console, a link with someone else's token would sign the reader in as them.
  function signInFromFragment() {
    var form = document.getElementById("login-form");
    if (!form || !window.location.hash) return;
    var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
    if (!match) return;
    history.replaceState(null, "", window.location.pathname + window.location.search);
    form.querySelector("#token").value = decodeURIComponent(match[1]);
    var host = window.location.hostname;
    if (host === "127.0.0.1" || host === "localhost" || host === "[::1]" || host === "::1") {
      form.submit();
    }
  }

  // Polling: an element with data-live-refresh="ms" is re-fetched and swapped in place until
  // the fresh copy no longer asks for refreshing (the run has finished).
  function liveRefresh() {
    var live = document.querySelector("[data-live-refresh]");
    if (!live) return;
    var every = parseInt(live.getAttribute("data-live-refresh"), 10) || 3000;
    var timer = window.setTimeout(function tick() {
      fetch(window.location.href, { credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(live.id);
          if (!fresh) return;
          var openDetails = Array.prototype.map.call(live.querySelectorAll("details[open] > summary"), function (s) { return s.textContent; });
          live.replaceWith(fresh);
          live = fresh;
          Array.prototype.forEach.call(live.querySelectorAll("details > summary"), function (s) {
            if (openDetails.indexOf(s.textContent) >= 0) s.parentElement.open = true;
          });
          if (live.hasAttribute("data-live-refresh")) {
            timer = window.setTimeout(tick, every);
          }
        })
        .catch(function () { timer = window.setTimeout(tick, every * 2); });
    }, every);
    window.addEventListener("beforeunload", function () { window.clearTimeout(timer); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    signInFromFragment();
    liveRefresh();
  });
})();
