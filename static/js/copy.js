// Copy buttons: <button type="button" class="copy-button" data-copy-from="ELEMENT_ID"
// aria-label="Copy job ID">Copy</button> copies the text of the element with that id (an
// input's value, otherwise its trimmed text) to the clipboard.
//
// One delegated listener, so buttons inside fragments that htmx swaps in keep working. The
// async Clipboard API needs a secure context (https or localhost); on plain http, as on a LAN
// install, it is missing and a selected off-screen textarea with execCommand("copy") stands in.
// The result shows on the button for a moment and is announced through one polite live region
// (created at load, so it exists before anything is written to it).
(function () {
  const RESTORE_AFTER_MS = 2000;
  let status = null;

  function liveRegion() {
    if (status === null) {
      status = document.createElement("div");
      status.className = "visually-hidden";
      status.setAttribute("aria-live", "polite");
      status.id = "copy-status";
      document.body.appendChild(status);
    }
    return status;
  }

  function announce(text) {
    const region = liveRegion();
    // Cleared first so that copying the same thing twice is announced twice.
    region.textContent = "";
    window.setTimeout(function () { region.textContent = text; }, 50);
  }

  function textOf(element) {
    if (element instanceof HTMLInputElement || element instanceof HTMLTextAreaElement) {
      return element.value;
    }
    return element.textContent.trim();
  }

  function copyWithSelection(text, button) {
    const buffer = document.createElement("textarea");
    buffer.value = text;
    buffer.readOnly = true;
    buffer.className = "visually-hidden";
    buffer.setAttribute("aria-hidden", "true");
    buffer.tabIndex = -1;
    document.body.appendChild(buffer);
    buffer.select();
    let copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    buffer.remove();
    button.focus();
    return copied;
  }

  function copy(text, button) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return copyWithSelection(text, button); }
      );
    }
    return Promise.resolve(copyWithSelection(text, button));
  }

  function show(button, copied) {
    const name = button.getAttribute("aria-label") || "";
    if (!button.dataset.copyLabel) {
      button.dataset.copyLabel = button.textContent;
    }
    button.textContent = copied ? "Copied" : "Copy failed";
    button.classList.toggle("copy-done", copied);
    announce(copied
      ? (name ? name.replace(/^Copy/, "Copied") : "Copied")
      : "Could not copy: select the text and copy it by hand.");
    window.clearTimeout(Number(button.dataset.copyTimer || 0));
    button.dataset.copyTimer = String(window.setTimeout(function () {
      button.textContent = button.dataset.copyLabel;
      button.classList.remove("copy-done");
    }, RESTORE_AFTER_MS));
  }

  document.addEventListener("DOMContentLoaded", liveRegion);

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button.copy-button[data-copy-from]");
    if (!button) {
      return;
    }
    const source = document.getElementById(button.dataset.copyFrom);
    if (!source) {
      show(button, false);
      return;
    }
    copy(textOf(source), button).then(function (copied) { show(button, copied); });
  });
})();
