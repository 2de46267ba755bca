// Tabs as the WAI-ARIA Authoring Practices describe them: buttons with role="tab" in a
// role="tablist", aria-selected and aria-controls on each, one tab stop for the whole list
// (the selected tab), and the arrow keys, Home and End moving to and opening a tab.

const NEXT_KEYS = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1};

/**
 * Wire one tablist. `onSelect(tab)` runs after a tab opened (by click, key or `select`).
 * Returns {select(tabOrName)} where a name matches the tab's data-tab or data-panel.
 */
export function wireTablist(tablist, onSelect) {
  const tabs = [...tablist.querySelectorAll('[role="tab"]')];
  const named = (name) => tabs.find((t) => t.dataset.tab === name || t.dataset.panel === name);

  function select(tab, focus) {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      t.classList.toggle("active", on);
      const panel = document.getElementById(t.getAttribute("aria-controls"));
      if (panel) {
        panel.classList.toggle("active", on);
        panel.hidden = !on;
      }
    }
    if (focus) tab.focus();
    if (onSelect) onSelect(tab);
  }

  tablist.addEventListener("click", (e) => {
    const tab = e.target.closest('[role="tab"]');
    if (tab && tabs.includes(tab)) select(tab, false);
  });
  tablist.addEventListener("keydown", (e) => {
    const i = tabs.indexOf(document.activeElement);
    if (i < 0) return;
    let j = null;
    if (e.key in NEXT_KEYS) j = (i + NEXT_KEYS[e.key] + tabs.length) % tabs.length;
    else if (e.key === "Home") j = 0;
    else if (e.key === "End") j = tabs.length - 1;
    if (j === null) return;
    e.preventDefault();
    select(tabs[j], true);
  });
  const current = tabs.find((t) => t.getAttribute("aria-selected") === "true") || tabs[0];
  select(current, false);
  return {select: (tabOrName) => select(typeof tabOrName === "string" ? named(tabOrName) : tabOrName, false)};
}
