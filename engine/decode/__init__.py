"""Decode a checkpoint's sample files into RGB uint8 samples, one file at a time.

Images go through Pillow; ``.npy``/``.npz`` through numpy without pickle; ``.pt`` through
``torch.load(weights_only=True)`` (never arbitrary unpickling). A file that cannot be read
becomes a :class:`SkippedFile` with a one-line reason, and the rest of the checkpoint still
decodes.

Rules
-----
* A checkpoint that is one image, or a folder with exactly one image, is a grid candidate:
  it is split when :func:`engine.grids.detect_grid` finds a grid. The several images of a
  generated checkpoint are grid candidates each when its first and last are grids of one
  geometry with tiles of at least 16 px (BigGAN's sample sheets ``{itr}/samples{i}.jpg``, one
  grid per process ``{step}_rank{r}.png``): a folder of single samples costs two detections,
  and one small sample the detector takes for blocks does not cut the folder. With forced geometry
  (``grid``/``tile_size``) every image of a generated checkpoint is split (reference sets
  are never force-split: the geometry describes the trainer's grids).
* Instance ids: the tile index in a grid, the row in a tensor (both offset by the samples of
  earlier grid/tensor files in the same checkpoint, so they stay distinct), the integer in an
  image's file name when no other file of the checkpoint yields it (``00007.png`` is 7), else
  -1 (said once per checkpoint when others keep theirs).
* Labels, first found: a tensor's ``labels``/``y`` key, the labels file (keyed by file path,
  name, stem or instance id; without ``labels_file``, a ``labels.csv``/``labels.json`` in the
  checkpoint folder is used), the per-label sub-folder (see ``DiscoveryOptions.label_folders``).
* Tensor values: uint8 as is; other integers above 255 as 16-bit; floats in ``--value-range``,
  else by the file's range (:func:`~engine.decode.pixels.pixel_scaling`). Floats below -1.5 are not images (latents,
  say) and the file is skipped.
* Large tensor files are not read whole: a ``.npy`` and an ``.npz`` written by ``np.savez``
  (uncompressed) are read and converted a chunk of samples at a time (:class:`~engine.decode.file_rows.FileRows`; a
  50k x 256 x 256 samples file is 10 GB). A ``.pt`` is read whole.

Modules, each importing only those listed before it
---------------------------------------------------
``skip``          :class:`SkipFile`, and the checks made before a file is decoded
``file_rows``     arrays stored plainly in a file, read a chunk of rows at a time (:class:`FileRows`)
``pixels``        pixel values of any dtype and range made RGB uint8 (:data:`VALUE_RANGES`)
``images``        image files through Pillow (:func:`load_image`, :func:`decode_image`)
``tensors``       ``.npy``/``.npz``/``.pt`` files (:func:`load_tensor_file`)
``labels``        labels files and per-label folders
``instance_ids``  instance ids read from file names
``samples``       a checkpoint's samples (:func:`iter_samples`)
"""
