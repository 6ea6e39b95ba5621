// The one way our page modules put text into the page: as an element's textContent, never
// as markup, so residents' words (descriptions, addresses) always show as text.
export function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}
