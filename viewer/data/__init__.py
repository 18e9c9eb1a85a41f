"""The viewer's data layer: cached store reads, filters, selection geometry, figure builders.

The page (``viewer/app.py``) stays a thin layout over this module (style.md item 12):

- Loaders are keyed on ``(store path, Commit)``: a :class:`Commit` holds every committed
  count the viewer depends on, so a new commit from the watcher invalidates exactly the
  loaders it affects and nothing is re-read between reruns otherwise.
- Everything else is a pure function on numpy arrays returning plain values or the
  canvas components' specs (map, signals), testable without a server.

Scale (issue 6: a million points). The map is a canvas (:func:`viewer.canvas.evolution_map`, specs by :mod:`viewer.data.figures`) that
draws every visible point while they number at most :data:`MAX_POINTS`; past that it
switches to a datashader-style raster: every visible point is binned server-side into one
PNG (count gives the opacity, the colour mode gives the hue) and only a fixed random sample
of :data:`SAMPLE_POINTS` points is sent as markers for hover and clicks. The browser
payload therefore stays about 1 MB at any size. Box and lasso selections are resolved
server-side from the selection's geometry against *all* visible rows, not just the drawn
sample, so selecting in raster mode loses nothing. (Why not pydeck: its selection is
``single-object`` only in Streamlit 1.67; why not datashader itself: it adds numba/dask for
what ``np.bincount`` does here in tens of milliseconds.)

Modules, each importing only those listed before it
---------------------------------------------------
``commits``       the store's committed state (:class:`Commit`), the cached reader, read errors' text
``step_signals``  the per-step metric table, the signal columns shown, the alerts' text
``map_data``      the map's rows (:class:`MapData`), their placement, per-sample metrics
``filters``       :class:`Filters` and the rows they keep
``selections``    box and lasso selections resolved against every visible row; trails
``colors``        colour modes and scales (:class:`Coloring`)
``figures``       the map's and the signals chart's specs (markers or raster)
``copies``        the training image each sample lies nearest to (what a near-copy copies)
``sample_rows``   selected rows' columns, thumbnails, export, step comparison
``text_query``    ranking samples by a text prompt
"""
