// trainbot: live refresh. The pages are complete without this script; it
// only fetches the same URL every few seconds and swaps <main> in place.
// Logs marked "follow" stay scrolled to their end (tail -f).
(function () {
  "use strict";
  var refreshes = 0;

  function main(doc) {
    return doc.querySelector("main");
  }

  function follow(root) {
    root.querySelectorAll("pre.log.follow").forEach(function (pre) {
      pre.scrollTop = pre.scrollHeight;
    });
  }

  function openSteps(root) {
    var open = {};
    root.querySelectorAll("details.step").forEach(function (d, i) {
      open[i] = d.open;
    });
    return open;
  }

  function schedule() {
    var m = main(document);
    var seconds = m && parseInt(m.getAttribute("data-refresh") || "", 10);
    if (!seconds) {
      return;
    }
    window.setTimeout(refresh, seconds * 1000);
  }

  function refresh() {
    fetch(window.location.href, { headers: { Accept: "text/html" }, cache: "no-store" })
      .then(function (res) {
        if (!res.ok) {
          throw new Error("HTTP " + res.status);
        }
        return res.text();
      })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var fresh = main(doc);
        var old = main(document);
        if (!fresh || !old) {
          return;
        }
        var wasOpen = openSteps(old);
        var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
        old.replaceWith(fresh);
        fresh.querySelectorAll("details.step").forEach(function (d, i) {
          if (i in wasOpen) {
            d.open = wasOpen[i];
          }
        });
        document.title = doc.title;
        var right = doc.querySelector(".top-right");
        var oldRight = document.querySelector(".top-right");
        if (right && oldRight) {
          oldRight.replaceWith(right);
        }
        document.body.classList.remove("stale");
        refreshes += 1;
        // Lets a test (and a curious operator) see that live refresh works.
        document.body.setAttribute("data-refreshed", String(refreshes));
        follow(fresh);
        if (atBottom) {
          window.scrollTo(0, document.body.scrollHeight);
        }
      })
      .catch(function () {
        document.body.classList.add("stale");
      })
      .then(schedule);
  }

  document.addEventListener("DOMContentLoaded", function () {
    follow(document);
    schedule();
  });
})();
