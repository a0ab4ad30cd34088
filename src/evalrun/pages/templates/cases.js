(function () {
  "use strict";
  var cases = JSON.parse(document.getElementById("cases-data").textContent);
  var answers = JSON.parse(document.getElementById("answers-data").textContent);
  var messages = JSON.parse(document.getElementById("messages-data").textContent);
  var body = document.querySelector("#cases tbody"), more = document.getElementById("more");
  var count = document.getElementById("f-count"), dialog = document.getElementById("case");
  var PAGE = 300, shown = PAGE, matching = [];
  function el(tag, text, cls) { var e = document.createElement(tag); if (text !== undefined && text !== null) e.textContent = text; if (cls) e.className = cls; return e; }
  function value(id) { return document.getElementById(id).value; }
  function why(c) {
    if (c.error) return c.error;
    for (var i = 0; i < (c.assertions || []).length; i++) { var a = c.assertions[i]; if (!a.pass) return a.type + ": " + a.reason; }
    return "";
  }
  function filter() {
    var status = value("f-status"), cat = value("f-category"), model = value("f-model"), text = value("f-text").toLowerCase();
    matching = [];
    for (var i = 0; i < cases.length; i++) {
      var c = cases[i];
      if (status === "failing" ? (c.status !== "fail" && c.status !== "error") : (status && c.status !== status)) continue;
      if (cat && c.category !== cat) continue;
      if (model && c.model !== model) continue;
      if (text && (c.id + " " + (c.response || "") + " " + why(c)).toLowerCase().indexOf(text) < 0) continue;
      matching.push(i);
    }
    shown = PAGE; draw();
  }
  function draw() {
    body.textContent = "";
    var limit = Math.min(shown, matching.length);
    for (var k = 0; k < limit; k++) {
      var i = matching[k], c = cases[i], tr = el("tr");
      tr.tabIndex = 0; tr.dataset.index = i; tr.setAttribute("aria-label", "case " + c.id + ", " + c.status);
      tr.appendChild(el("td", c.id + (c.repeat ? " #" + (c.repeat + 1) : "")));
      tr.appendChild(el("td", c.category));
      tr.appendChild(el("td", c.model, "hide-narrow"));
      tr.appendChild(el("td", c.status.replace("_", " "), "status " + c.status));
      var answer = c.response === null ? (c.error || "") : c.response;
      tr.appendChild(el("td", answer.length > 120 ? answer.slice(0, 119) + "…" : answer));
      tr.appendChild(el("td", c.cached ? "cached" : Math.round(c.latency_ms) + " ms", "num hide-narrow"));
      body.appendChild(tr);
    }
    count.textContent = matching.length + " of " + cases.length + " cases";
    more.hidden = matching.length <= shown;
  }
  function open(i) {
    var c = cases[i], box = document.getElementById("case-body");
    document.getElementById("case-title").textContent = c.id + " · " + c.status.replace("_", " ");
    box.textContent = "";
    var facts = el("p", c.category + " · " + c.model + (c.repeat ? " · repeat " + (c.repeat + 1) : "") + " · " +
      (c.cached ? "cached" : Math.round(c.latency_ms) + " ms") + " · attempts " + c.attempts + " · tokens " +
      c.tokens.prompt + " + " + c.tokens.completion + (c.finish_reason ? " · finish " + c.finish_reason : ""), "muted small");
    box.appendChild(facts);
    if (messages[c.id]) {
      box.appendChild(el("h3", "Messages"));
      messages[c.id].forEach(function (m) {
        var text = typeof m.content === "string" ? m.content : JSON.stringify(m.content);
        box.appendChild(el("p", m.role, "muted small")); box.appendChild(el("pre", text));
      });
    }
    if (c.error) { box.appendChild(el("h3", "Error")); box.appendChild(el("pre", c.error, "error-text")); }
    if (c.refusal) { box.appendChild(el("h3", "Refusal")); box.appendChild(el("pre", c.refusal)); }
    box.appendChild(el("h3", "Answer"));
    box.appendChild(el("pre", answers[i] !== undefined ? answers[i] : (c.response === null ? "(none)" : c.response)));
    if ((c.assertions || []).length) {
      box.appendChild(el("h3", "Assertions"));
      var list = el("ul");
      c.assertions.forEach(function (a) {
        list.appendChild(el("li", (a.pass ? "✓ " : "✗ ") + a.type + (a.reason ? ": " + a.reason : "") + " (score " + a.score + ")", a.pass ? "status pass" : "status fail"));
      });
      box.appendChild(list);
    }
    dialog.showModal();
  }
  body.addEventListener("click", function (e) { var tr = e.target.closest("tr"); if (tr) open(+tr.dataset.index); });
  body.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { var tr = e.target.closest("tr"); if (tr) { e.preventDefault(); open(+tr.dataset.index); } } });
  more.addEventListener("click", function () { shown += PAGE; draw(); });
  ["f-status", "f-category", "f-model"].forEach(function (id) { document.getElementById(id).addEventListener("change", filter); });
  document.getElementById("f-text").addEventListener("input", filter);
  var params = new URLSearchParams(location.search);
  if (params.get("status")) document.getElementById("f-status").value = params.get("status");
  filter();
})();
