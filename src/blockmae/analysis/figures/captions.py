"""What each figure shows and how to read it: the heading and caption the report prints above it."""

from ..depth_similarity import KNN_K

# figure name -> (heading, caption), in report order
CAPTIONS = {
    "final_layer": (
        "Final-block quality",
        "Each panel compares the regimes at the last block (stage output) of the encoder. Rows: linear-probe "
        "accuracy (mean over the dataset's targets), leave-one-out retrieval mAP, masked-reconstruction MSE; "
        "columns: datasets. Groups are placed by model; colour = regime, hatching (bars) and marker (MSE points) = "
        "number of blocks K. A bar or point is the mean over seeds, the black whisker its 95% t-interval (none for a "
        "single seed), dots the individual seeds. Probe and mAP: bars from zero, so a bar's height is its value; the "
        "dashed grey line and its band are the random-init floor (randomly initialised encoders of the same shape, "
        "one per seed: their mean and 95% interval), what training must beat; the dotted black line on the probe "
        "panels is chance, the majority class's share averaged over targets. MSE: points on a zoomed axis beside the "
        "trivial predictors on the same clips and masks: the visible mean (dashed black, a copy of the clip's visible "
        "tubelets' mean), the per-clip oracle constant (dash-dot black, the best single tubelet per clip, which "
        "peeks at the hidden ones), and, where they fall on the axis, the position mean (dotted grey, a lookup "
        "table) and predict 0 (light grey); those off the axis are named with their values in the panel's corner. "
        "A model has learned something a copy could not only where it sits below the copy; the random encoders' MSE "
        "is not drawn (their decoders are untrained). Higher is better for accuracy and mAP, lower for MSE."),
    "depth_decodability": (
        "Decodability vs depth",
        "Linear-probe accuracy at the output of every block (and every layer where layer rows exist), one panel "
        "per target; the first panel is the mean over targets. By block, x is the relative depth where the block "
        "ends (block k of K at k/K, equal partitions), so K=4 and K=6 runs meet at the same depths and both end at "
        "1; by layer, x is the layer index. One line per (regime, K) with its 95% CI band over seeds; the dashed "
        "grey line and band are the random-init floor (randomly initialised encoders, one per seed); the dotted "
        "black line is chance, the target's majority-class share on the scored clips. A line that rises early and "
        "then flattens means the information is decodable early but later blocks add little; a line that keeps "
        "rising keeps building it."),
    "stage_losses_cka": (
        "Per-stage losses, consecutive-block CKA, and CKA vs retrieval gain",
        "(a) Masked-reconstruction MSE of each stage's decoder on held-out clips (E2E: its monitor decoders; "
        "random init not shown, its decoders are untrained) against relative depth (stage k of K at k/K); a flat "
        "line means late stages reconstruct no better than early ones. Horizontal lines: the trivial predictors on "
        "the same clips and masks, the visible mean (dashed black, a copy), the per-clip oracle constant (dash-dot "
        "black, the best constant per clip, which peeks at the answer) and, where they fall on the axis, the "
        "position mean (dotted grey, a lookup table) and predict 0; those off the axis are named with their values "
        "in the corner. (b) Linear CKA between the pooled features of blocks k and k+1, the pair drawn at (k+1)/K: "
        "values near 1 mean block k+1 barely changes the representation. "
        "(c) One dot per run and block pair: CKA(k, k+1) against the change in retrieval mAP from block k to "
        "k+1, with the least-squares line and Pearson r over trained runs (random init excluded from the fit). "
        "A negative slope means blocks that change the representation more gain more retrieval quality."),
    "saturation": (
        "Saturation, with and without bias",
        "Is the late-block plateau of consecutive-block CKA more than an estimator artefact? Plain (biased) CKA "
        "is inflated when clips are few relative to the feature dimension, so (a) the paper's plain linear CKA "
        "between blocks k and k+1 (drawn at relative depth (k+1)/K) is drawn beside (b) the debiased one (unbiased HSIC, Song et al. 2012), on the "
        "same y-range: a plateau that survives in (b) is real; one that sinks was partly bias. (c) Mutual kNN "
        f"alignment (Huh et al. 2024): the share of each clip's {KNN_K} nearest neighbours (cosine) that blocks k "
        f"and k+1 agree on; 1 = the same local neighbourhoods, about {KNN_K}/(n-1) = unrelated. (d) Intrinsic "
        "dimension by TwoNN (Facco et al. 2017) over depth: a flat late profile is consistent with blocks that "
        "change little, a falling one that the clips lie on ever fewer dimensions. Lines: mean over seeds "
        "with 95% CI bands; random init dashed."),
    "tokens": (
        "Token-level diagnostics",
        "Left: occlusion drop, the relative loss of probe accuracy when the clip keeps a single 16x16 patch "
        "(two for two-region gratings) — higher means the block's pooled feature relies on more of the clip. "
        "Right: token similarity, the mean cosine between the layer-normalised tokens of one clip — higher means "
        "tokens look more alike (less spatially specific). By block, x is the relative depth (block k of K at k/K); "
        "by layer, the layer index. Lines: mean over seeds with 95% CI bands."),
    "cka_heatmaps": (
        "CKA heatmaps",
        "Linear CKA between the pooled features of every pair of layers (or blocks) within one model — averaged "
        "over a group's seeds — and between the blocks of two different runs (row = first run's block, column = "
        "second run's block). Bright = similar (1 = identical up to rotation and scale). A bright block-diagonal "
        "square means a run of layers that compute nearly the same representation; across runs, a bright "
        "diagonal means the two runs develop in step."),
    "learning_dynamics": (
        "Learning dynamics",
        "Final-block metrics at every saved checkpoint of each run (x = training step), mean over seeds with a "
        "95% CI band where the seeds share the step. Beside them: the random-init floor's final block (dashed grey, "
        "with its band) on the probe and mAP panels, chance (dotted black) on the probe panels, and on the loss "
        "panels the trivial predictors as in the final-block figure. Shows whether a regime is still improving or "
        "has converged, and whether reconstruction loss and representation quality move together."),
    "stitching": (
        "Interfaces: stitching at block boundaries",
        "Run A's embedding and stages 1..k feed run B's stages k+1..K and top decoder through a trained affine "
        "stitch (identity at start; A and B frozen). Left: B's top-decoder loss stitched minus B's own (above 0: "
        "stitching costs); right: the final-block probe stitched minus B's own, in pp (below 0: stitching costs). "
        "Solid lines: pairs across regimes (colour: A's regime, marker: B's); dashed: pairs of seeds of one "
        "regime, the penalty stitching costs anyway. Interfaces differ only where the cross-regime penalty "
        "clearly exceeds the seeds' (finding 8)."),
    "continuation": (
        "Where the gap lives: frozen-base continuation",
        "A blockwise run continued for a fixed budget with its stages 1..k frozen and the stages above trained end "
        "to end with the top decoder (x = k; 0 retrains the whole encoder, K-1 the top stage alone, which is what "
        "blockwise training already did to it: the extra-steps control). Lines: the continued runs' final-block "
        "probe, mean over seeds with 95% CI band; dotted: the blockwise run as trained; dashed: E2E as trained. "
        "Where a line climbs to E2E's, retraining the stages above k is enough: they, not stages 1..k, hold the "
        "gap (finding 9)."),
    "reconstructions": (
        "Reconstructions",
        "Rows: clips (labelled with the run and dataset); columns: the input, the masked input (hidden tubelets "
        "grey), then each stage's decoder output with the visible tubelets pasted back. Each cell shows the first "
        "and the middle frame. With normalised-pixel targets the predictions are mapped back with the true "
        "tubelet's mean and std, so the pattern, not the brightness, is what each stage predicted."),
}
