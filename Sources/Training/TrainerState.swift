import Checkpoints
import Foundation
import Tensors

/// What is saved beside each checkpoint (`trainer_state.json`) so that a run resumes exactly:
/// the step, the generator, the options and the input's storage format. Optimizer moments
/// (and Float32 master weights when the model file was saved in a narrower dtype) go to
/// `trainer_state.safetensors`.
struct TrainerState: Codable {
    var formatVersion = 1
    /// Steps completed.
    var step: Int
    /// Tokens trained on so far.
    var tokens: Int
    /// The trainer's generator after `step` steps (four words, hexadecimal).
    var generator: [String]
    var options: TrainingOptions
    /// The training data: path and token count, checked on resume.
    var dataPath: String
    var dataTokens: Int
    /// `TokenData.contentHash` of the training data (absent in states of earlier versions).
    var dataHash: String?
    /// The held-out data of the run, if any.
    var evalDataPath: String?
    /// How the input checkpoint was stored (names, dtypes, sharding), kept for every save.
    var format: StoredFormat
    /// AdamW steps taken.
    var optimizerSteps: Int
    /// `trainer_state.safetensors` holds Float32 master weights (`master.<parameter name>`);
    /// AdamW moments are `exp_avg.<name>` and `exp_avg_sq.<name>`.
    var hasMasterWeights: Bool

    static let jsonName = "trainer_state.json"
    static let tensorsName = "trainer_state.safetensors"

    /// Checks a state read from `folder` before anything is done with it: a corrupted or
    /// hand-edited state must not make resume delete log rows or write odd step folders.
    func validate(folder: String) throws(TrainingError) {
        let file = folder + "/" + TrainerState.jsonName
        func bad(_ r: SettingMessage) -> TrainingError { .state(file: file, reason: r) }
        guard formatVersion == 1 else { throw bad("trainer state version \(formatVersion) is not supported") }
        guard step >= 0, tokens >= 0, optimizerSteps >= 0, dataTokens > 0 else {
            throw bad("step \(step), tokens \(tokens), optimizer steps \(optimizerSteps) and data tokens \(dataTokens) must be non-negative")
        }
        let name = (folder as NSString).lastPathComponent
        if name.hasPrefix("step"), let n = Int(name.dropFirst(4)), n != step {
            throw bad("says step \(step), but its folder is \(name)")
        }
        do { try options.validate() } catch { throw bad("its options are invalid: \(error)") }
        guard generator.count == 4, generator.allSatisfy({ UInt64($0, radix: 16) != nil }) else {
            throw bad("generator state is not four hexadecimal words")
        }
    }

    func generatorState() throws(TrainingError) -> SeededGenerator {
        let words = generator.compactMap { UInt64($0, radix: 16) }
        guard words.count == 4 else { throw .state(file: TrainerState.jsonName, reason: "generator state is not four hexadecimal words") }
        return SeededGenerator(state: words)
    }

    static func encode(_ g: SeededGenerator) -> [String] { g.state.map { String($0, radix: 16) } }

    /// Decodes and validates the bytes of a `trainer_state.json` of the step folder `folder`.
    static func parse(_ d: Data, folder: String) throws(TrainingError) -> TrainerState {
        let path = folder + "/" + jsonName
        let state: TrainerState
        do { state = try JSONDecoder().decode(TrainerState.self, from: d) } catch { throw .state(file: path, reason: "malformed: \(error)") }
        try state.validate(folder: folder)
        return state
    }

    /// Reads the state of the step folder `folder`.
    static func read(folder: String) throws(TrainingError) -> TrainerState {
        let path = folder + "/" + jsonName
        guard let d = FileManager.default.contents(atPath: path) else {
            throw .state(file: path, reason: "cannot read (not a step folder written by the trainer?)")
        }
        do { return try JSONDecoder().decode(TrainerState.self, from: d) } catch {
            throw .state(file: path, reason: "malformed: \(error)")
        }
    }

    func write(folder: String) throws(TrainingError) {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        let d: Data
        do { d = try enc.encode(self) } catch { throw .state(file: folder, reason: "cannot encode trainer state: \(error)") }
        do { try AtomicOutput.write(d, to: folder + "/" + TrainerState.jsonName) } catch { throw .files(error) }
    }

    /// The step folder to resume from: `dir` itself when it holds a trainer state, else its
    /// `step{N}` sub-folder with the largest N that holds one.
    static func resolve(_ dir: String) throws(TrainingError) -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/" + jsonName) { return dir }
        guard let entries = try? fm.contentsOfDirectory(atPath: dir) else { throw .state(file: dir, reason: "no such folder") }
        let steps = entries.compactMap { e -> (Int, String)? in
            guard e.hasPrefix("step"), let n = Int(e.dropFirst(4)), fm.fileExists(atPath: dir + "/" + e + "/" + jsonName) else { return nil }
            return (n, dir + "/" + e)
        }
        guard let best = steps.max(by: { $0.0 < $1.0 }) else {
            throw .state(file: dir, reason: "holds no step{N} folder with \(jsonName) to resume from")
        }
        return best.1
    }
}
