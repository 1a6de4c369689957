import Checkpoints
import Foundation

/// Decodes a family's config struct from a checkpoint's `config.json` object.
func decodeConfig<T: Decodable>(_ type: T.Type, from config: ModelConfig, source: String) throws(ModelsError) -> T {
    do { return try config.decode(T.self) } catch let e as ConfigDecodingFailure {
        throw .config(file: source, reason: e.description)
    } catch let e as ModelsError {
        throw e
    } catch {
        throw .config(file: source, reason: "\(error)")
    }
}
