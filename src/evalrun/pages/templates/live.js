(function () {
  "use strict";
  function follow(box) {
    var run = box.dataset.run, source = new EventSource("/api/runs/" + run + "/events");
    var cats = {};
    function set(name, value) { var e = box.querySelector('[data-f="' + name + '"]'); if (e && value !== undefined && value !== null) e.textContent = value; }
    function show(p) {
      ["progress_percentage", "completed", "total", "cases_per_second", "eta_formatted", "in_flight",
       "concurrency_limit", "cache_hits", "retries", "rate_limited", "errors", "top_error", "message"].forEach(function (k) { set(k, p[k]); });
      var badges = [box.querySelector('[data-f="status"]')].concat(Array.from(document.querySelectorAll('[data-run-state="' + run + '"]')));
      badges.forEach(function (state) { state.textContent = p.status; state.className = "state " + String(p.status).replace(" ", "-"); });
      box.querySelector("progress").value = p.progress_percentage;
    }
    function draw() {
      var grid = box.querySelector('[data-f="categories"]'); grid.textContent = "";
      Object.keys(cats).sort().forEach(function (name) {
        var n = document.createElement("span"); n.textContent = name;
        var bar = document.createElement("progress"); bar.max = cats[name].total || cats[name].done; bar.value = cats[name].done;
        bar.setAttribute("aria-label", "category " + name);
        var t = document.createElement("span"); t.textContent = cats[name].done + (cats[name].total ? "/" + cats[name].total : "") + " · " + cats[name].passed + " passed";
        grid.appendChild(n); grid.appendChild(bar); grid.appendChild(t);
      });
    }
    function update(p) {
      show(p);
      // Each category's whole counts, from the same snapshot as the figures above: they agree, and
      // are right however late this page joined.
      if (p.categories) { cats = p.categories; draw(); }
    }
    source.addEventListener("progress", function (e) { update(JSON.parse(e.data)); });
    source.addEventListener("summary", function (e) {
      update(JSON.parse(e.data)); source.close(); box.dataset.ended = "1";
      if (box.dataset.reload !== undefined) setTimeout(function () { location.reload(); }, 1000);  // 100 % seen, then the results
    });
    source.onerror = function () { if (box.dataset.ended) source.close(); };
  }
  document.querySelectorAll(".live[data-run]").forEach(follow);
  document.querySelectorAll("[data-cancel]").forEach(function (button) {
    button.addEventListener("click", function () {
      button.disabled = true;
      fetch("/api/runs/" + button.dataset.cancel + "/cancel", {method: "POST"});
    });
  });
})();
