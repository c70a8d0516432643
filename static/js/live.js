// Live updates: one request per page per interval, for every live part at once.
//
// A page opts in with data-live-url on an element. Its live parts carry data-live-key (the
// job), data-live-version (what the server last rendered) and, while the job can still
// change, data-live-active. Each poll sends the versions shown; the server answers 204 when
// nothing changed, or the changed parts, which are morphed into place: nodes that stay the
// same are kept, so focus, text selection, scroll and open <details> survive. Status changes
// are announced in a polite live region, the tab title follows them, and relative times
// ("12 s ago", "in 5 min") are kept truthful here, without asking the server. While the
// server cannot answer (a 5xx, or no answer at all) the page waits longer after each failure
// and never has two requests in flight.
//
// A check that finds nothing new changes no part, so every answer (204s too) says in its
// X-Ftdash-Checked-At header when the parts were last checked, for the page's "Checked with
// Token Factory 3 s ago" line (data-live-checked); the parts say when they last changed.
//
// Strict CSP: a static file, no eval, no inline handlers.
(function () {
  "use strict";

  var HIDDEN_INTERVAL_MS = 60000;
  var root = document.querySelector("[data-live-url]");
  var timer = null;
  var inFlight = false;
  var lastPoll = Date.now();

  function liveParts() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live-key][data-live-active]"));
  }

  function visibleInterval() {
    var seconds = parseFloat(root.getAttribute("data-live-interval")) || 5;
    return Math.max(1, seconds) * 1000;
  }

  function interval() {
    return document.visibilityState === "hidden" ? HIDDEN_INTERVAL_MS : visibleInterval();
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = null;
    if (liveParts().length) {
      timer = setTimeout(poll, delay === undefined ? nextDelay() : delay);
    }
  }

  // --- When the server cannot answer ----------------------------------------------------

  // A 5xx (ftdash's database restarting answers 503) or a network error: every open tab
  // asking at its usual rhythm would pile onto a server that is coming back, so each failure
  // doubles the wait, up to a minute and never sooner than the server's Retry-After. The
  // first good answer brings the usual rhythm back.
  var MAX_BACKOFF_MS = 60000;
  var failures = 0;
  var retryAfterMs = 0;

  function ServerUnavailable(retryAfter) { this.retryAfter = retryAfter; }

  function retryAfterOf(response) {
    var seconds = parseInt(response.headers.get("Retry-After"), 10);
    return isNaN(seconds) ? 0 : seconds * 1000;
  }

  function failed(error) {
    failures += 1;
    retryAfterMs = error instanceof ServerUnavailable ? error.retryAfter : 0;
    if (failures === 1) { announce("Can't reach the server; retrying\u2026"); }
  }

  function answered() {
    if (failures) { announce("Connected to the server again."); }
    failures = 0;
    retryAfterMs = 0;
  }

  function nextDelay() {
    if (!failures) { return interval(); }
    return Math.min(MAX_BACKOFF_MS, Math.max(interval() * Math.pow(2, failures), retryAfterMs));
  }

  function poll() {
    var parts = liveParts();
    if (!parts.length || inFlight) { return; }
    var seen = {};
    var query = [];
    parts.forEach(function (part) {
      var key = part.getAttribute("data-live-key");
      if (!seen[key]) {
        seen[key] = true;
        query.push("v=" + encodeURIComponent(key + "." + part.getAttribute("data-live-version")));
      }
    });
    var url = root.getAttribute("data-live-url");
    inFlight = true;
    lastPoll = Date.now();
    fetch(url + (url.indexOf("?") < 0 ? "?" : "&") + query.join("&"), {
      credentials: "same-origin",
      headers: { "HX-Request": "true", "HX-Current-URL": window.location.href }
    }).then(function (response) {
      if (response.status >= 500) { throw new ServerUnavailable(retryAfterOf(response)); }
      answered();
      // An expired session: the server names the sign-in page to send the whole tab to.
      var redirect = response.headers.get("HX-Redirect");
      if (redirect) { window.location.assign(redirect); return null; }
      if (response.status === 404) {
        // The job was removed, or moved out of reach: nothing here will change any more.
        liveParts().forEach(function (part) { part.removeAttribute("data-live-active"); });
        announce("This job is no longer tracked here.");
      }
      if (response.status === 200 || response.status === 204) {
        showChecked(response.headers.get("X-Ftdash-Checked-At"));
      }
      return response.status === 200 ? response.text() : null;
    }).then(function (html) {
      if (html) { apply(html); }
    }, failed).catch(function () {
      // A part that could not be applied is no reason to stop polling, nor to back off.
    }).then(function () {
      inFlight = false;
      schedule();
    });
  }

  function apply(html) {
    var template = document.createElement("template");
    template.innerHTML = html;
    Array.prototype.slice.call(template.content.children).forEach(function (incoming) {
      var current = incoming.id && document.getElementById(incoming.id);
      if (!current) { return; }
      var before = current.getAttribute("data-status");
      morph(current, incoming);
      var after = current.getAttribute("data-status");
      if (after && before && after !== before) {
        announce((current.getAttribute("data-live-name") || "A job") + " is now " + after.replace(/_/g, " ") + ".");
      }
    });
    updateTitle();
    updateTimes();
  }

  // --- Morphing: change only what differs -----------------------------------------------

  function sameKind(a, b) {
    if (a.nodeType !== b.nodeType) { return false; }
    if (a.nodeType !== 1) { return true; }
    return a.tagName === b.tagName && (a.id || "") === (b.id || "");
  }

  // The same part for sure: kind and class agree. The same kind alone may be another part
  // that took this one's place (a notice appearing above a card's links) or this part changed
  // (a badge whose class follows the status); see matchFor.
  function samePart(a, b) {
    return sameKind(a, b) && (a.nodeType !== 1 || a.getAttribute("class") === b.getAttribute("class"));
  }

  function morph(current, incoming) {
    if (current.nodeType !== 1) {
      if (current.nodeValue !== incoming.nodeValue) { current.nodeValue = incoming.nodeValue; }
      return;
    }
    syncAttributes(current, incoming);
    morphChildren(current, incoming);
  }

  function keepsOwnState(element, name) {
    // Whether a <details> is open is the reader's choice, not the server's; so is what is
    // typed into a field that has focus.
    if (name === "open" && element.tagName === "DETAILS") { return true; }
    return name === "value" && element === document.activeElement;
  }

  function syncAttributes(current, incoming) {
    Array.prototype.slice.call(current.attributes).forEach(function (attribute) {
      if (!incoming.hasAttribute(attribute.name) && !keepsOwnState(current, attribute.name)) {
        current.removeAttribute(attribute.name);
      }
    });
    Array.prototype.slice.call(incoming.attributes).forEach(function (attribute) {
      if (current.getAttribute(attribute.name) !== attribute.value && !keepsOwnState(current, attribute.name)) {
        current.setAttribute(attribute.name, attribute.value);
      }
    });
  }

  function childWithId(parent, id) {
    for (var node = parent.firstElementChild; node; node = node.nextElementSibling) {
      if (node.id === id) { return node; }
    }
    return null;
  }

  function wantedLater(node, wanted, from) {
    for (var i = from; i < wanted.length; i++) {
      if (samePart(node, wanted[i])) { return true; }
    }
    return false;
  }

  // Which child of `parent`, at the cursor or a little after it, becomes wanted[index]; null
  // if wanted[index] is new. Parts that appeared or left are inserted or dropped, so the parts
  // around them are kept (with focus and selection) instead of being morphed one into another.
  function matchFor(parent, cursor, wanted, index) {
    var node = wanted[index];
    if (node.nodeType === 1 && node.id) { return childWithId(parent, node.id); }
    if (!cursor) { return null; }
    if (samePart(cursor, node)) { return cursor; }
    if (node.nodeType !== 1) { return null; }
    // Skip what is not wanted any more (never a part with an id, which may be wanted elsewhere).
    for (var ahead = cursor; ahead; ahead = ahead.nextSibling) {
      if (ahead !== cursor && samePart(ahead, node)) { return ahead; }
      if ((ahead.nodeType === 1 && ahead.id) || (ahead.nodeType === 1 && wantedLater(ahead, wanted, index + 1))) {
        break;
      }
    }
    return sameKind(cursor, node) && !wantedLater(cursor, wanted, index + 1) ? cursor : null;
  }

  function morphChildren(current, incoming) {
    var wanted = Array.prototype.slice.call(incoming.childNodes);
    var cursor = current.firstChild;
    wanted.forEach(function (node, index) {
      var match = matchFor(current, cursor, wanted, index);
      if (!match) {
        current.insertBefore(node, cursor);
        return;
      }
      if (match.nodeType === 1 && match.id) {
        if (match !== cursor) { current.insertBefore(match, cursor); }
      } else {
        while (cursor !== match) {  // parts that left the page
          var gone = cursor;
          cursor = cursor.nextSibling;
          current.removeChild(gone);
        }
      }
      morph(match, node);
      cursor = match.nextSibling;
    });
    while (cursor) {
      var next = cursor.nextSibling;
      current.removeChild(cursor);
      cursor = next;
    }
  }

  // --- What the page says about the changes ---------------------------------------------

  function announce(text) {
    var region = document.getElementById("live-announcer");
    if (!region) { return; }
    var line = document.createElement("p");
    line.textContent = text;
    region.appendChild(line);
    while (region.childNodes.length > 5) { region.removeChild(region.firstChild); }
  }

  function updateTitle() {
    var titled = document.querySelector("[data-page-title]");
    if (titled) {
      document.title = titled.getAttribute("data-page-title");
      return;
    }
    if (!root.hasAttribute("data-live-count-running")) { return; }
    var running = runningElsewhere + runningHere();
    var base = document.title.replace(RUNNING_TITLE, "");
    document.title = (running ? "(" + running + " running) " : "") + base;
  }

  function runningHere() {
    return document.querySelectorAll("[data-live-key][data-status='running']").length;
  }

  // The server's title counts the running jobs of every page of the list; the cards shown
  // here are the part of that count this page can follow.
  var RUNNING_TITLE = /^\((\d+) running\) /;
  var runningElsewhere = Math.max(0, Number((RUNNING_TITLE.exec(document.title) || [0, 0])[1]) - runningHere());

  // --- Relative times -------------------------------------------------------------------

  // No header: none of the parts shown had a check that worked (each failing one says so).
  function showChecked(at) {
    var line = document.querySelector("[data-live-checked]");
    if (!line) { return; }
    line.hidden = !at;
    if (at) {
      line.querySelector("time").setAttribute("datetime", at);
      updateTimes();
    }
  }

  // The same words as jobs/humanize.py: "12 s", "5 min", "3 h 20 min", "2 d 4 h".
  function span(seconds) {
    seconds = Math.floor(Math.abs(seconds));
    if (seconds < 90) { return seconds + " s"; }
    var minutes = Math.floor(seconds / 60);
    if (minutes < 90) { return minutes + " min"; }
    var hours = Math.floor(minutes / 60);
    minutes = minutes % 60;
    if (hours < 48) { return minutes ? hours + " h " + minutes + " min" : hours + " h"; }
    return Math.floor(hours / 24) + " d " + (hours % 24) + " h";
  }

  function updateTimes() {
    var now = Date.now();
    document.querySelectorAll("time[data-relative]").forEach(function (element) {
      var when = Date.parse(element.getAttribute("datetime"));
      if (isNaN(when)) { return; }
      var seconds = (when - now) / 1000;
      var kind = element.getAttribute("data-relative");
      var text;
      if (kind === "since") {
        text = span(seconds);
      } else if (kind === "unchanged") {
        text = "no change for " + span(seconds);
      } else if (kind === "ago" || seconds <= 0) {
        text = span(seconds) + " ago";
      } else {
        text = "in " + span(seconds);
      }
      if (element.textContent !== text) { element.textContent = text; }
    });
  }

  updateTimes();
  setInterval(updateTimes, 1000);

  if (!root) { return; }
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      // Catch up at once if a poll is due by the visible interval; else keep the rhythm.
      // While the server cannot answer, the backoff still holds.
      var waited = Date.now() - lastPoll;
      schedule(Math.max(0, (failures ? nextDelay() : visibleInterval()) - waited));
    } else {
      schedule();
    }
  });
  schedule(root.hasAttribute("data-live-due") ? 0 : undefined);
})();
