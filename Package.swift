// swift-tools-version:6.0
import Foundation
import PackageDescription

// Data flows one way through the layers, each a target depending only on those above it:
//   C shims -> Tensors (kernels) -> Checkpoints -> MoELayout -> Analysis (+ Embedding)
//   MoELayout -> Models (forward pass, family configs) -> Training, Routing (both with Analysis)
//   Plotting (on Cairo, knows no MoE) -> Reports -> moe-inspect (thin CLI)

// Release builds are -O with whole-module optimisation (SwiftPM's default); input-facing layers
// keep Swift's overflow and bounds checks. Only the targets of numeric kernels (Tensors,
// Embedding, Training, Models), whose hot loops run on validated sizes over unsafe pointers, drop them
// with -Ounchecked (kept from the first version, whose benchmarks chose it); the inputs those
// targets parse (.npy headers, trainer state, configs) check sizes explicitly
// (multipliedReportingOverflow, guarded indices) rather than relying on traps.
let kernels: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

// The Swift code is compiled for the vector unit of the machine that builds it: its kernels are
// written on 16-lane Float vectors, which the default x86-64 target (SSE2) runs as four 4-lane
// instructions each, without FMA units or wider registers (measured: the attention softmax of the
// forward pass at 3 ns an element). Floating-point results do not change (Swift contracts no
// a * b + c into an FMA, and the vector code does the same operations in each lane). A build is
// then for CPUs like the builder's: CCPUCheck stops a binary on a CPU without those
// instructions, before any Swift code runs, with a one-line error. MOE_INSPECT_CPU=generic builds
// for any x86-64 (or names an LLVM CPU, e.g. haswell).
let cpuLevel: (name: String?, level: Int) = {
    let override = ProcessInfo.processInfo.environment["MOE_INSPECT_CPU"]
    if override == "generic" { return (nil, 0) }
    if let override, !override.isEmpty { return (override, override.contains("avx512") ? 2 : 1) }
    #if arch(x86_64) && os(Linux)
    guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
        let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
    else { return (nil, 0) }
    let flags = Set(line.split(separator: " ").map(String.init))
    if ["avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd", "avx2", "fma", "bmi2"].allSatisfy(flags.contains) {
        return ("skylake-avx512", 2)
    }
    // (Linux names LZCNT `abm`)
    if ["avx2", "fma", "bmi1", "bmi2", "f16c", "movbe"].allSatisfy(flags.contains), flags.contains("abm") || flags.contains("lzcnt") {
        return ("haswell", 1)
    }
    #endif
    return (nil, 0)
}()
let cpu: [SwiftSetting] = cpuLevel.name.map { [.unsafeFlags(["-target-cpu", $0])] } ?? []

let package = Package(
    name: "moe-inspect",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "moe-inspect", targets: ["moe-inspect"]),
        .library(
            name: "MoEInspect",
            targets: [
                "Tensors", "Checkpoints", "Tokenizers", "MoELayout", "Embedding", "Analysis", "Training", "Plotting", "Reports", "Models", "Routing",
            ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
    ],
    targets: [
        // MARK: - System libraries
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CCairo", pkgConfig: "cairo", providers: [.apt(["libcairo2-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        // oneDNN (libdnnl-dev) is optional, so not a systemLibrary: a C shim that loads
        // libdnnl.so.2 with dlopen when present and compiles to "unavailable" without its headers.
        .target(name: "CDNNL", linkerSettings: [.linkedLibrary("dl")]),
        // Stops a binary built for AVX-512 or AVX2 on a CPU without them, before any Swift runs.
        .target(name: "CCPUCheck", cSettings: [.define("MOE_INSPECT_CPU_LEVEL", to: String(cpuLevel.level))]),

        // MARK: - Tensors and files
        .target(name: "Tensors", dependencies: ["CBLAS", "CDNNL", "CCPUCheck"], swiftSettings: kernels),
        .target(name: "Checkpoints", dependencies: ["Tensors", "CHDF5"]),
        .target(name: "MoELayout", dependencies: ["Tensors", "Checkpoints"]),
        // tokenizer.json readers; Unicode normalization through the ICU inside the toolchain
        // (Foundation's NFKC is wrong on Linux).
        .target(
            name: "Tokenizers", dependencies: ["Checkpoints"],
            linkerSettings: [.linkedLibrary("_FoundationICU", .when(platforms: [.linux]))]),

        // MARK: - Analyses and training
        .target(name: "Embedding", dependencies: ["Tensors"], swiftSettings: kernels),
        .target(name: "Analysis", dependencies: ["Tensors", "Checkpoints", "MoELayout", "Embedding"]),
        .target(name: "Models", dependencies: ["Tensors", "Checkpoints", "MoELayout"], swiftSettings: kernels),
        .target(name: "Training", dependencies: ["Tensors", "Checkpoints", "MoELayout", "Analysis", "Tokenizers", "Models"], swiftSettings: kernels),
        .target(name: "Routing", dependencies: ["Tensors", "Checkpoints", "MoELayout", "Analysis", "Models"]),

        // MARK: - Figures and reports
        .target(name: "Plotting", dependencies: ["CCairo", "CPNG"]),
        .target(name: "Reports", dependencies: ["Tensors", "Checkpoints", "MoELayout", "Analysis", "Embedding", "Plotting", "Routing"]),

        // MARK: - Executable
        .executableTarget(
            name: "moe-inspect",
            dependencies: [
                "Tensors", "Checkpoints", "Tokenizers", "MoELayout", "Embedding", "Analysis", "Training", "Plotting", "Reports", "Models", "Routing",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        // MARK: - Fuzzing (make fuzz builds it with -sanitize=fuzzer -D FUZZING)
        .executableTarget(name: "moe-fuzz", dependencies: ["Checkpoints", "MoELayout", "Training"], path: "Sources/Fuzz"),

        // MARK: - Tests
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(
            name: "CheckpointsTests",
            dependencies: [
                "TestSupport", "Checkpoints", "Tensors",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ]),
        .testTarget(name: "TokenizersTests", dependencies: ["Tokenizers", "Checkpoints"]),
        .testTarget(name: "MoELayoutTests", dependencies: ["TestSupport", "MoELayout", "Checkpoints", "Tensors"]),
        .testTarget(name: "EmbeddingTests", dependencies: ["Embedding", "Tensors"]),
        .testTarget(name: "AnalysisTests", dependencies: ["TestSupport", "Analysis", "Embedding", "MoELayout", "Checkpoints", "Tensors"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "MoELayout", "Checkpoints", "Tensors"]),
        .testTarget(name: "RoutingTests", dependencies: ["Routing", "Models", "Analysis", "MoELayout", "Checkpoints", "Tensors"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Tokenizers", "Analysis", "MoELayout", "Checkpoints", "Tensors"]),
        .testTarget(name: "PlottingTests", dependencies: ["Plotting"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Plotting", "Analysis"]),
        .testTarget(name: "CLITests", dependencies: []),
    ]
)

// Every Swift target of the package (not its dependencies) for the builder's vector unit.
let cTargets: Set = ["CDNNL", "CCPUCheck"]
for target in package.targets where target.type != .system && !cTargets.contains(target.name) {
    target.swiftSettings = (target.swiftSettings ?? []) + cpu
}
