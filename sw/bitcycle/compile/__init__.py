"""Brevitas → QONNX → FINN dataflow → HLS/RTL project and driver metadata.

Public API (FINN/torch are imported only inside these modules, never by ``bitcycle.driver``):

* ``bitcycle.compile.export``: ``prepare(model, input_shape, pixel_max)`` → ``ExportedModel``
  (integer pixel input, integer logits, the cut-off head affine), ``export_qonnx(exported, path)``,
  ``load_checkpoint(path)``.
* ``bitcycle.compile.passes``: the FINN-style passes (``TidyUp``, ``CheckSupportedQONNX``,
  ``AnnotateInput``, ``ToFinn``, ``StreamlineBnn``, ``ToXnorPopcount``, ``CheckStreamlined``,
  ``InferHwLayers``, ``InputQuantOnHost``, ``CheckHwMapped``, ``Specialize``).
* ``bitcycle.compile.customop``: ``BitSerialMVAU`` / ``BitSerialMVAU_rtl`` (registered with FINN on
  import) and ``MapToBitSerialMVAU``; one module per job behind it (``bitserial_op``, ``bitserial_rtl``,
  ``lut_model``, ``mvau_rtl`` + ``templates/``, ``mvau_images``, ``map_bitserial``).
* ``bitcycle.compile.folding``: ``FoldForTarget``, ``resource_report``, ``resource_table``.
* ``bitcycle.compile.steps``: the named ``step_*(model, cfg)`` functions, in order (``STEP_NAMES``).
* ``bitcycle.compile.config``: ``CompileConfig`` (documented, JSON: ``compile_config.json``).
* ``bitcycle.compile.flow``: ``run_steps`` (cfg's steps from start_step to stop_step, each executable
  graph checked bit-exact, each saved to ``intermediate_models/``), ``run_flow``, ``execute``.
* ``bitcycle.compile.project``: ``build_project`` → ``build/<model>/``.
"""
