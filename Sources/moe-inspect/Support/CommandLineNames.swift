import Tensors

/// The command line's names of the library's settings: a library message names a setting by its
/// property (`sequenceLength`), this tool shows the flag that sets it (`--seq-len`).
enum CommandLineNames {
    /// Library setting name -> flag. One table for every command: a setting has the same flag
    /// wherever it is offered.
    static let flags: [String: String] = [
        // training (TrainingOptions and the trainer's inputs)
        "steps": "--steps", "batchSize": "--batch-size", "sequenceLength": "--seq-len", "accumulation": "--grad-accum",
        "learningRate": "--lr", "warmupSteps": "--warmup", "beta1": "--beta1", "beta2": "--beta2", "adamEpsilon": "--adam-eps",
        "weightDecay": "--weight-decay", "optimizer": "--optimizer", "clipGradNorm": "--clip-grad-norm", "lbWeight": "--lb-weight",
        "zWeight": "--z-weight", "ercWeight": "--erc-weight", "ercAlpha": "--erc-alpha", "saveEvery": "--save-every",
        "trainGroups": "--train", "evalBatches": "--eval-batches", "data": "--data", "dataDType": "--data-dtype",
        "tokenizer": "--tokenizer", "output": "--out", "resume": "--resume",
        // checkpoints, layouts, routing, reports
        "overwrite": "--overwrite", "dtype": "--dtype", "layoutFile": "--layout", "windowLength": "--seq-len",
        "maxTokens": "--max-tokens", "runLabels": "--runs", "labels": "--labels", "tables": "--tables",
        // synth --like deepseek-v3 (SyntheticDeepseekV3.Shape)
        "vocabSize": "--vocab", "hiddenSize": "--hidden", "denseIntermediateSize": "--dense-intermediate",
        "expertIntermediateSize": "--intermediate", "moeLayers": "--layers", "heads": "--heads", "experts": "--experts",
        "topK": "--top-k", "groups": "--groups", "topGroups": "--top-groups", "qLoraRank": "--q-lora-rank",
        "kvLoraRank": "--kv-lora-rank", "qkNopeHeadDim": "--nope-head-dim", "qkRopeHeadDim": "--rope-head-dim",
        "vHeadDim": "--v-head-dim", "denseLayers": "--dense-layers", "sharedExperts": "--shared-experts",
    ]

    /// The flag of `setting`; a setting the table lacks keeps the library's name.
    static func flag(_ setting: Setting) -> String { flags[setting.name] ?? setting.name }
}

extension SettingNamingError {
    /// The message as this tool prints it: settings named by their flags.
    var commandLineDescription: String { description(naming: CommandLineNames.flag) }
}
