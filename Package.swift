// swift-tools-version:6.0
import PackageDescription

// Data flows one way through the layers, each a target depending only on those above it:
//   C shims -> Tensors -> Checkpoints -> MoELayout -> Analysis (+ Embedding) -> Training
//   Plotting (on Cairo, knows no MoE) -> Reports -> moe-inspect (thin CLI)

// Input-facing layers keep Swift's overflow and bounds checks (-O); only the numeric kernels,
// whose loops run on validated sizes over unsafe pointers, drop them.
let optimize: [SwiftSetting] = [.unsafeFlags(["-wmo"], .when(configuration: .release))]
let kernels: [SwiftSetting] = [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "moe-inspect",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "moe-inspect", targets: ["moe-inspect"]),
        .library(name: "MoEInspect", targets: [
            "Tensors", "Checkpoints", "MoELayout", "Embedding", "Analysis", "Training", "Plotting", "Reports",
        ]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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

        // MARK: - Tensors and files
        .target(name: "Tensors", dependencies: ["CBLAS", "CDNNL"], swiftSettings: kernels),
        .target(name: "Checkpoints", dependencies: ["Tensors", "CHDF5"], swiftSettings: optimize),
        .target(name: "MoELayout", dependencies: ["Tensors", "Checkpoints"], swiftSettings: optimize),

        // MARK: - Analyses and training
        .target(name: "Embedding", dependencies: ["Tensors"], swiftSettings: kernels),
        .target(name: "Analysis", dependencies: ["Tensors", "Checkpoints", "MoELayout", "Embedding"], swiftSettings: optimize),
        .target(name: "Training", dependencies: ["Tensors", "Checkpoints", "MoELayout", "Analysis"], swiftSettings: kernels),

        // MARK: - Figures and reports
        .target(name: "Plotting", dependencies: ["CCairo", "CPNG"], swiftSettings: optimize),
        .target(name: "Reports", dependencies: ["Tensors", "Checkpoints", "MoELayout", "Analysis", "Embedding", "Plotting"], swiftSettings: optimize),

        // MARK: - Executable
        .executableTarget(
            name: "moe-inspect",
            dependencies: [
                "Tensors", "Checkpoints", "MoELayout", "Embedding", "Analysis", "Training", "Plotting", "Reports",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: optimize),

        // MARK: - Fuzzing (make fuzz builds it with -sanitize=fuzzer -D FUZZING)
        .executableTarget(name: "safetensors-fuzz", dependencies: ["Checkpoints"], path: "Sources/SafetensorsFuzz"),
        .executableTarget(name: "olmo-core-fuzz", dependencies: ["Checkpoints"], path: "Sources/OLMoCoreFuzz"),

        // MARK: - Tests
        .testTarget(name: "TensorsTests", dependencies: ["Tensors"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints", "Tensors"]),
        .testTarget(name: "MoELayoutTests", dependencies: ["MoELayout", "Checkpoints", "Tensors"]),
        .testTarget(name: "EmbeddingTests", dependencies: ["Embedding", "Tensors"]),
        .testTarget(name: "AnalysisTests", dependencies: ["Analysis", "Embedding", "MoELayout", "Checkpoints", "Tensors"]),
        .testTarget(name: "TrainingTests", dependencies: ["Training", "Analysis", "MoELayout", "Checkpoints", "Tensors"]),
        .testTarget(name: "PlottingTests", dependencies: ["Plotting"]),
        .testTarget(name: "ReportsTests", dependencies: ["Reports", "Plotting", "Analysis"]),
        .testTarget(name: "CLITests", dependencies: []),
    ]
)
