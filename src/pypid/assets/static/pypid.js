/* The pages for people's one script: results as one types, copy buttons,
   and the browser's own origin in the install snippets.  Every page works
   without it.  It builds the DOM with textContent only, never HTML from
   data, and is served by pypid (Content-Security-Policy: script-src 'self'). */
(function () {
  "use strict";

  var root = document.documentElement.getAttribute("data-root") || "";
  var MIN_SUBSTRING = 3;
  var SHOWN = 8;
  var PAGE = 20;

  /* The site's absolute root, for snippets: the browser knows where it is. */
  function siteRoot() {
    return new URL(root || "./", window.location.href).href;
  }

  function fillBase() {
    var base = siteRoot();
    document.querySelectorAll("[data-base]").forEach(function (el) {
      el.textContent = base;
    });
  }

  function addCopyButtons() {
    if (!navigator.clipboard) { return; }
    document.querySelectorAll("[data-copy]").forEach(function (el) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "copy";
      button.textContent = "Copy";
      var what = el.classList.contains("hash") ? "the SHA-256" : "the command";
      button.setAttribute("aria-label", "Copy " + what);
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(el.textContent.trim()).then(function () {
          button.textContent = "Copied";
          window.setTimeout(function () { button.textContent = "Copy"; }, 1500);
        }, function () { button.textContent = "Select and copy"; });
      });
      if (el.tagName === "PRE") {
        var wrap = document.createElement("div");
        wrap.className = "copy-wrap";
        el.parentNode.insertBefore(wrap, el);
        wrap.appendChild(el);
        wrap.appendChild(button);
      } else {
        el.insertAdjacentElement("afterend", button);
      }
    });
  }

  /* -- search in the browser, over a static copy's packages.json ------------- */

  function normalize(name) {
    return name.toLowerCase().replace(/[-_.]+/g, "-");
  }

  /* The ranking of pypid.core.search: exact name, prefix, word prefix,
     substring, then every word in the summary. */
  function rank(packages, query) {
    var name = normalize(query.trim().replace(/\s+/g, "-")).replace(/^-+|-+$/g, "");
    /* (\w as Python's: letters and digits of every script) */
    var words = (query.toLowerCase().match(/[\p{L}\p{N}_]+/gu) || []);
    var longest = words.reduce(function (n, w) { return Math.max(n, w.length); }, 0);
    var hits = [];
    packages.forEach(function (p) {
      var r = -1;
      if (name) {
        if (p.name === name) { r = 0; }
        else if (p.name.indexOf(name) === 0) { r = 1; }
        else if (name.length >= MIN_SUBSTRING && p.name.indexOf("-" + name) >= 0) { r = 2; }
        else if (name.length >= MIN_SUBSTRING && p.name.indexOf(name) >= 0) { r = 3; }
      }
      if (r < 0 && longest >= MIN_SUBSTRING && p.summary) {
        var text = p.summary.toLowerCase();
        if (words.every(function (w) { return text.indexOf(w) >= 0; })) { r = 4; }
      }
      if (r >= 0) { hits.push([r, p]); }
    });
    hits.sort(function (a, b) {
      return a[0] - b[0] || a[1].name.length - b[1].name.length ||
        (a[1].name < b[1].name ? -1 : a[1].name > b[1].name ? 1 : 0);
    });
    return hits.map(function (h) {
      var p = h[1];
      return {name: p.name, display_name: p.display_name, summary: p.summary,
              version: p.version, url: "project/" + encodeURIComponent(p.name) + "/"};
    });
  }

  var packages = null;

  function staticSearch(source, query) {
    var ready = packages ? Promise.resolve(packages) :
      fetch(source, {credentials: "same-origin"}).then(function (r) {
        if (!r.ok) { throw new Error("packages.json: " + r.status); }
        return r.json();
      }).then(function (list) { packages = list; return list; });
    return ready.then(function (list) {
      var hits = rank(list, query);
      return {query: query, total: hits.length, hits: hits};
    });
  }

  function serverSearch(source, query, size) {
    var url = source + "?q=" + encodeURIComponent(query) + "&size=" + size;
    return fetch(url, {credentials: "same-origin",
                       headers: {"Accept": "application/json"}}).then(function (r) {
      if (!r.ok) { throw new Error("search: " + r.status); }
      return r.json();
    });
  }

  function search(source, query, size) {
    if (/\.json$/.test(source)) { return staticSearch(source, query); }
    return serverSearch(source, query, size);
  }

  /* A result as a list item: its link, its version, and its summary in a
     "span" (suggestions) or a "p" (the results page). */
  function hitItem(hit, summaryTag) {
    var li = document.createElement("li");
    var a = document.createElement("a");
    a.href = root + hit.url;  /* (every url is from the site's root) */
    a.textContent = hit.display_name;
    li.appendChild(a);
    if (hit.version) {
      var v = document.createElement("span");
      v.className = "version";
      v.textContent = " " + hit.version;
      li.appendChild(v);
    }
    if (hit.summary) {
      var summary = document.createElement(summaryTag);
      summary.textContent = hit.summary;
      li.appendChild(summary);
    }
    return li;
  }

  function showSuggestions(box, result) {
    box.textContent = "";
    if (!result.query) { return; }
    var list = document.createElement("ul");
    list.setAttribute("aria-label", "Matching projects");
    result.hits.slice(0, SHOWN).forEach(function (hit) {
      list.appendChild(hitItem(hit, "span"));
    });
    if (!result.hits.length) {
      var none = document.createElement("li");
      none.textContent = "No project matches.";
      list.appendChild(none);
    }
    box.appendChild(list);
  }

  /* The results list of the search page, replaced as one types. */
  function showResults(box, result, limit, hint) {
    box.textContent = "";
    var count = document.createElement("p");
    count.className = "count";
    count.setAttribute("role", "status");
    count.textContent = (result.total === 1 ? "1 project matches" :
      result.total + " projects match") + " \u201c" + result.query + "\u201d";
    box.appendChild(count);
    var list = document.createElement("ol");
    list.className = "results";
    result.hits.slice(0, limit).forEach(function (hit) {
      list.appendChild(hitItem(hit, "p"));
    });
    box.appendChild(list);
    if (result.total > limit) {
      var more = document.createElement("p");
      more.className = "muted";
      more.textContent = "The first " + limit + " are shown" + hint;
      box.appendChild(more);
    }
  }

  /* The search box of a page: suggestions under it as one types, or, on
     the search page, its results replaced as one types (the first page of
     them; Enter gives the server's pages). A static copy's search page is
     filled from its query on load, as it has no server to render it. */
  function wireSearch(input) {
    var source = input.getAttribute("data-suggest");
    var staticCopy = /\.json$/.test(source);
    var resultsId = input.getAttribute("data-results");
    var live = resultsId ? document.getElementById(resultsId) : null;
    var box = live ? null : document.getElementById("suggestions");
    if (!live && !box) { return; }
    var timer = null;
    var asked = 0;

    function run() {
      var query = input.value.trim();
      var mine = ++asked;
      if (!query) {
        if (box) { box.textContent = ""; }
        return;
      }
      search(source, query, live ? PAGE : SHOWN).then(function (result) {
        if (mine !== asked) { return; }
        if (live) {
          if (staticCopy) { showResults(live, result, 100, "."); }
          else { showResults(live, result, PAGE, ": press Enter for every page of them."); }
          window.history.replaceState(null, "", "?q=" + encodeURIComponent(query));
        } else {
          showSuggestions(box, result);
        }
      }, function () {
        if (box) { box.textContent = ""; }
      });
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(run, 120);
    });
    input.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && box) { box.textContent = ""; }
    });
    if (live && staticCopy) {
      var q = new URLSearchParams(window.location.search).get("q");
      if (q) { input.value = q; run(); }
    }
  }

  function start() {
    fillBase();
    addCopyButtons();
    document.querySelectorAll("input[data-suggest]").forEach(wireSearch);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
