/* refdesk widget loader: the one line a member library puts on its website.
 *
 *   <script src="https://REFDESK/widget.js" data-library="springfield" async></script>
 *
 * Adds an "Ask a librarian" button (bottom right) that opens and closes a chat
 * panel: an iframe of https://REFDESK/widget/{slug}/. refdesk's address comes
 * from this script's own src. Optional attributes: data-color="#rrggbb" (button
 * colour; keep it dark, the text is white unless the colour is too light) and
 * data-label (button text). Everything lives in a shadow root so the host
 * page's styles neither leak in nor get disturbed.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || !script.getAttribute("data-library")) {
    var candidates = document.querySelectorAll('script[src*="widget.js"][data-library]');
    script = candidates[candidates.length - 1];
  }
  if (!script) return;
  var slug = (script.getAttribute("data-library") || "").trim();
  if (!/^[-A-Za-z0-9_]+$/.test(slug)) {
    if (window.console) console.warn("refdesk widget: data-library must be a library slug");
    return;
  }
  var refdeskOrigin = new URL(script.src, window.location.href).origin;
  var registry = (window.__refdeskWidgets = window.__refdeskWidgets || {});
  if (registry[slug]) return;
  registry[slug] = true;

  var color = script.getAttribute("data-color") || "";
  if (!/^#[0-9a-fA-F]{6}$/.test(color)) color = "#1f4e79";
  var label = (script.getAttribute("data-label") || "").trim() || "Ask a librarian";

  function luminance(hex) {
    var parts = [1, 3, 5].map(function (i) {
      var c = parseInt(hex.slice(i, i + 2), 16) / 255;
      return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2];
  }
  var textColor = 1.05 / (luminance(color) + 0.05) >= 4.5 ? "#ffffff" : "#111111";

  var css =
    ":host{all:initial}" +
    ".toggle{position:fixed;right:16px;bottom:16px;z-index:2147483000;display:inline-flex;" +
    "align-items:center;gap:8px;min-height:48px;padding:12px 20px;border-radius:999px;" +
    "border:2px solid #ffffff;background:" + color + ";color:" + textColor + ";" +
    "font:600 16px/1.2 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;" +
    "box-shadow:0 2px 10px rgba(0,0,0,.35);cursor:pointer}" +
    ".toggle:hover{filter:brightness(1.12)}" +
    ".toggle:focus-visible{outline:3px solid #111111;outline-offset:2px;" +
    "box-shadow:0 0 0 2px #ffffff,0 0 0 7px #ffffff}" +
    ".icon{width:20px;height:20px;flex:none}" +
    ".badge{display:none;width:12px;height:12px;border-radius:50%;background:#c5221f;" +
    "border:2px solid #ffffff}" +
    ".toggle.attention .badge{display:inline-block}" +
    ".panel{position:fixed;right:16px;bottom:80px;z-index:2147483000;" +
    "width:min(400px,calc(100vw - 32px));height:min(640px,calc(100vh - 112px));" +
    "border-radius:12px;overflow:hidden;background:#ffffff;border:1px solid #c9ced6;" +
    "box-shadow:0 8px 30px rgba(0,0,0,.3)}" +
    ".panel[hidden]{display:none}" +
    "iframe{display:block;width:100%;height:100%;border:0}" +
    // On a phone the open panel takes the whole screen (its own Minimise button
    // closes it), so the launcher never covers the composer.
    "@media (max-width:480px){.panel{left:0;right:0;top:0;bottom:0;width:auto;" +
    "height:auto;border-radius:0;border:0}" +
    ".toggle[aria-expanded=true]{display:none}}";

  function mount() {
    var host = document.createElement("div");
    host.setAttribute("data-refdesk-widget", slug);
    var root = host.attachShadow({ mode: "open" });

    var style = document.createElement("style");
    style.textContent = css;

    var button = document.createElement("button");
    button.type = "button";
    button.className = "toggle";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", "refdesk-panel");
    var svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "icon");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("fill", "currentColor");
    path.setAttribute(
      "d",
      "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z" +
        "m0 2v10h2v2l2.5-2H20V6H4z"
    );
    svg.appendChild(path);
    button.appendChild(svg);
    var text = document.createElement("span");
    text.textContent = label;
    var badge = document.createElement("span");
    badge.className = "badge";
    badge.setAttribute("aria-hidden", "true");
    button.appendChild(text);
    button.appendChild(badge);

    var panel = document.createElement("div");
    panel.id = "refdesk-panel";
    panel.className = "panel";
    panel.hidden = true;

    var iframe = null;
    var loaded = false;

    function focusPanel() {
      if (!iframe) return;
      iframe.focus();
      iframe.contentWindow.postMessage({ source: "refdesk", type: "focus" }, refdeskOrigin);
    }

    function open() {
      if (!iframe) {
        iframe = document.createElement("iframe");
        iframe.title = label + " — chat";
        iframe.src = refdeskOrigin + "/widget/" + encodeURIComponent(slug) + "/";
        iframe.setAttribute("allow", "clipboard-write");
        iframe.addEventListener("load", function () {
          loaded = true;
          if (!panel.hidden) focusPanel();
        });
        panel.appendChild(iframe);
      }
      panel.hidden = false;
      button.setAttribute("aria-expanded", "true");
      button.classList.remove("attention");
      if (loaded) focusPanel();
    }

    function close(returnFocus) {
      panel.hidden = true;
      button.setAttribute("aria-expanded", "false");
      if (returnFocus) button.focus();
    }

    button.addEventListener("click", function () {
      if (panel.hidden) open();
      else close(false);
    });

    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && !panel.hidden) close(true);
    });

    window.addEventListener("message", function (event) {
      if (!iframe || event.origin !== refdeskOrigin || event.source !== iframe.contentWindow) return;
      var data = event.data || {};
      if (data.source !== "refdesk") return;
      if (data.type === "close") close(true);
      else if (data.type === "attention" && panel.hidden) button.classList.add("attention");
    });

    root.appendChild(style);
    root.appendChild(button); // the button, then the panel it controls: natural focus order
    root.appendChild(panel);
    document.body.appendChild(host);
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
