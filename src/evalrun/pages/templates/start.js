(function () {
  "use strict";
  var LISTS = {suites: 1, models: 1, categories: 1, pytest_args: 1}, NUMBERS = {concurrency: 1, repeat: 1, limit: 1, timeout: 1};
  document.querySelectorAll("form.start").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var body = {}, error = document.getElementById(form.id + "-error");
      new FormData(form).forEach(function (value, name) {
        value = String(value).trim(); if (!value) return;
        if (LISTS[name]) body[name] = name === "pytest_args" ? value.split(/\s+/) : value.split(",").map(function (v) { return v.trim(); }).filter(Boolean);
        else if (NUMBERS[name]) body[name] = Number(value);
        else body[name] = value;
      });
      error.textContent = "";
      fetch(form.dataset.endpoint, {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)})
        .then(function (r) { return r.json().then(function (j) { return {ok: r.ok, body: j}; }); })
        .then(function (r) {
          if (r.ok) { location.href = "/runs/" + r.body.run_id; return; }
          var d = r.body.detail;
          error.textContent = Array.isArray(d) ? d.map(function (x) { return x.loc.slice(1).join(".") + ": " + x.msg; }).join("; ") : String(d);
        });
    });
  });
})();
