// The invoice run page's live progress: polls the run's progress route every second and shows
// accounts done of all; once the run has finished (or stopped) it reloads the page, which then
// lists the run's counts, its failures and the link to the drafts. No third-party code.
(function () {
  "use strict";
  var run = document.getElementById("run");
  if (!run || run.getAttribute("data-state") === "finished") {
    return;
  }
  var url = run.getAttribute("data-progress");

  function text(id, value) {
    var element = document.getElementById(id);
    if (element) {
      element.textContent = String(value);
    }
  }

  function show(progress) {
    text("run-state", progress.state);
    text("run-done", progress.accounts_done);
    text("run-total", progress.accounts);
    var bar = document.getElementById("run-bar");
    if (bar) {
      bar.max = Math.max(progress.accounts, 1);
      bar.value = progress.accounts_done;
    }
    var chunks = Object.keys(progress.chunks).sort().map(function (state) {
      return progress.chunks[state] + " " + state;
    });
    text("run-chunks", chunks.length ? chunks.join(", ") : "none");
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("progress answered " + answer.status);
        }
        return answer.json();
      })
      .then(function (progress) {
        show(progress);
        if (progress.state === "finished" || progress.stopped) {
          window.location.reload();
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 1000);
      });
  }

  window.setTimeout(poll, 1000);
})();
