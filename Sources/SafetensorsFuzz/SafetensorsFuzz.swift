import Checkpoints

/// Runs the safetensors header parser on one input; any outcome but a trap is fine.
func parse(_ data: UnsafeRawBufferPointer) {
    _ = try? SafetensorsHeader.parse(data, file: "fuzz-input")
}

#if FUZZING
/// libFuzzer entry point (built by `make fuzz` with -sanitize=fuzzer -D FUZZING).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    parse(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// SwiftPM links an executable's entry point under this name; hand over to libFuzzer's driver.
@_cdecl("safetensors_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v, { data, size in fuzzOne(data, size) })
}
#else
import Foundation

/// Without libFuzzer: replays the files given as arguments (a corpus or crash reproducers).
@main
struct Replay {
    static func main() {
        for path in CommandLine.arguments.dropFirst() {
            guard let d = FileManager.default.contents(atPath: path) else { continue }
            d.withUnsafeBytes { parse($0) }
        }
    }
}
#endif
