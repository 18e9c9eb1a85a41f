
// The components' shared entry point, appended by viewer/canvas.py to a module that defines
// `View` (a class taking the parent element, with update(data, api) and destroy()).
export default function (component) {
  const { data, parentElement, setStateValue, setTriggerValue } = component;
  let view = parentElement.__evoview;
  if (view && view.pendingDestroy) { clearTimeout(view.pendingDestroy); view.pendingDestroy = null; }
  if (!view) view = parentElement.__evoview = new View(parentElement);
  if (data) view.update(data, { setStateValue, setTriggerValue });
  // Streamlit calls this only when the element unmounts, or right away for a render that a
  // newer one already replaced: destroy later, unless a newer render picked the view up.
  return () => {
    view.pendingDestroy = setTimeout(() => {
      if (parentElement.__evoview === view) delete parentElement.__evoview;
      view.destroy();
    }, 0);
  };
}
