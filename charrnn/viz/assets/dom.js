/* Small DOM helpers shared by the two pages that draw a text one element per character: the viz
 * page (`charrnn viz`, which puts this file inline before viz.js) and the serve playground (which
 * loads it as assets/dom.js before its own scripts). Plain browser JavaScript, no libraries.
 */
"use strict";

window.charrnnDom = (function () {
  // An element with attributes (`text` sets its text) and children (null ones skipped).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  // Characters a reader cannot see get a visible stand-in (in lists and panels, not in the text).
  function visible(ch) {
    if (ch === "\n") return "↵";
    if (ch === " ") return "␣";
    if (ch === "\t") return "⇥";
    const code = ch.codePointAt(0);
    if (code < 32) return String.fromCodePoint(0x2400 + code);
    if (code === 127) return "␡";
    return ch;
  }

  const group3 = (x) => x.toLocaleString("en-US");

  return { el, visible, group3 };
})();
