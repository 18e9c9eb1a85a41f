"""Find a run's checkpoints and their sample files: a pure function of a directory snapshot.

Nothing here decodes images or touches the store; the watcher calls
:func:`~engine.discovery.scan.scan_run` on every pass and :func:`~engine.discovery.ready.is_ready` /
:func:`~engine.discovery.identity.content_hash` to decide what to ingest.

Checkpoint level rule
---------------------
A *numbered entry* is a sample file, or a directory holding sample files somewhere below,
whose name yields a step (``step_regex``, default the last integer of the name, so
``epoch=3-step=1000`` is step 1000 and ``fake_samples_epoch_003.png`` step 3). Entries
without a step (``real_samples.png``, ``reals.png``, ``fakes_init.png``, ``logs/``) are
never checkpoints. Starting at the run directory:

1. A level whose numbered entries carry at least two distinct steps is the checkpoint
   level: each numbered entry there is one checkpoint (a file, or a folder whose sample
   files, nested or not, are its samples). Unless they are folders numbered like runs
   (``0, 1, 2``: ``lightning_logs/version_0/``, ``version_1/``) that each hold a series of
   checkpoints (rule 2): then each is a run, read with this rule, their checkpoints
   together (with a warning: point evowatch at one run).
2. Otherwise each numbered *directory* there is looked into: it is a run (descend, and
   apply the rule inside it) when the first level inside it that holds numbered sample
   entries (its folders side by side taken together: ``cat/``, ``dog/``) shows signs of a series of checkpoints rather than of one checkpoint's samples:
   numbers that are not consecutive like instance indices (kimg ``0, 200, 400``; a lone
   number above 1, as ``images/epoch=3-step=1000/`` alone below a ``version_0/``), sample
   files without a number beside them (``reals.png``), or numbered weight files beside
   them (``network-snapshot-000200.pkl``, ``model-12.pt``); not those two in a folder named as a
   checkpoint whose files are numbered as its samples (``step_100/{00000..00015}.png`` beside a
   ``grid.png``, a corrupt image or ``model_100.pt``: what lies there is the checkpoint's own; so is a
   file numbered with the folder's step, ``grid_100.png``, whose number is left out). Else it is
   one checkpoint. This is what lets ``outdir/00000-mydata-auto1/`` be read as a run and
   ``run/checkpoint-500/{00000..00063}.png`` as the first checkpoint of a run.
3. A level with no numbered entry is looked through: its unnumbered sub-directories are
   scanned with the same rule (``run/samples/step_500/``, ``results/sample-12.png``).

Single images named with a step and then a sample index, several per step at one level
(``samples/step1000_00.png`` ... ``step2000_07.png``; with ``step_regex``, the first number
after its match is the index), are one entry per step: a checkpoint whose source is the
pattern of its files (``samples/step1000_*.png``; a date, time or hash in the names is a ``?``
per character: kohya-ss's ``sample/mylora_000500_*_??????????????.png``).

The one case this cannot tell apart is a lone numbered folder holding only files with
consecutive numbers (``sample-1.png``, ``sample-2.png``); it is read as one checkpoint. Point evowatch at the run
directory itself (or pass ``step_regex``) to remove the doubt. The run directory itself named
as a checkpoint (``checkpoint-500/``, ``step_000500/samples/``) and holding such files is
read so, said with a line naming its run (:func:`engine.discovery.scan._is_one_checkpoint`).

Weight and state files are never sample files: by extension (``.pth``, ``.pkl``,
``.ckpt``, ``.safetensors``, ``.bin``, ...) and by name (``model-12.pt``, ``optimizer.pt``,
``ema.pt``, ...), checked before any file is opened; a tensor file whose name speaks of
samples is one anyway (``ema_samples_1000.pt``). Neither are tensor files of evaluation results
(``statistics_0.npz``, ``report_1.npz``, ``fid_stats.npz``). Folders and files with a temporary name
(``step_3000.tmp/``, ``grid.png.part``) are ignored until renamed into place. A Zarr store (a
folder holding ``zarr.json``) and its ``STORE.lock`` are ignored at any depth: a store kept in the
run (``--store run/step_000100/evo.zarr``) is no checkpoint's content, and its writes do not keep
the checkpoint around it "being written".

Modules, each importing only those listed before it
---------------------------------------------------
``options``        the file kinds read, by extension, and :class:`DiscoveryOptions`
``said_once``      warnings said once per folder and subject (:func:`warn_once`)
``names``          what a file's name says it holds (weights, real data, evaluation results)
``steps``          steps and sample indices read from names
``folders``        listing and walking folders (a vanished entry is an absent one)
``previews``       whether an image beside a tensor file of its name shows fewer samples than it holds
``samples``        which files below a folder are its samples
``file_times``     what files' times tell of the order they were written in
``groups``         files that together are one checkpoint (per-step files, per-sample folders)
``step_counters``  steps of names that count an epoch and a batch or step in it
``levels``         the level rule's reading of one folder, and whether a numbered folder is a run
``scan``           :func:`scan_run` and :func:`scan_reference`
``ready``          whether a checkpoint is completely written (:func:`is_ready`)
``identity``       file versions and content hashes of a checkpoint
"""
