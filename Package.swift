// swift-tools-version:6.0
// Lookalike: reverse image search. The targets follow the pipeline:
// C shims (libvips, XNNPACK, BLAS, VLFeat) -> LookalikeEngine (decode, preprocess, network, embedding)
// -> LookalikeIndex (vector stores and indexes) and LookalikeCatalogue (the SQLite library) -> LookalikeVerification
// (local features, spatial verification) -> LookalikeSearch (the query pipeline: live library, re-ranking,
// indexing) -> LookalikeMilvus -> LookalikeEvaluation;
// LookalikeServer (HTTP API and web page on Hummingbird) and the `lookalike` CLI are thin callers.
import PackageDescription

let package = Package(
    name: "Lookalike",
    // Linux only (Debian 12): the C targets link Debian's libvips, XNNPACK and OpenBLAS, and
    // CKernels is compiled per x86-64 level; no Apple platform is built or tested.
    products: [
        .executable(name: "lookalike", targets: ["lookalike"]),
        .executable(name: "lookalike-bench", targets: ["lookalike-bench"]),
        .library(name: "LookalikeEngine", targets: ["LookalikeEngine"]),
        .library(name: "LookalikeIndex", targets: ["LookalikeIndex"]),
        .library(name: "LookalikeVerification", targets: ["LookalikeVerification"]),
        .library(name: "LookalikeSearch", targets: ["LookalikeSearch"]),
        .library(name: "LookalikeMilvus", targets: ["LookalikeMilvus"]),
        .library(name: "LookalikeEvaluation", targets: ["LookalikeEvaluation"]),
        .library(name: "LookalikeServer", targets: ["LookalikeServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.20.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.0.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.5.0"),
    ],
    targets: [
        .systemLibrary(name: "CVips", pkgConfig: "vips", providers: [.apt(["libvips-dev", "libturbojpeg0-dev", "libexif-dev", "libheif-dev"])]),
        // libvips wrappers, the libjpeg-turbo fast path, libheif for HEIC/AVIF stored thumbnails, and
        // libexif for the photo's EXIF facts.
        .target(name: "CVipsShim", dependencies: ["CVips"],
                linkerSettings: [.linkedLibrary("turbojpeg"), .linkedLibrary("exif"), .linkedLibrary("heif")]),
        // VLFeat's SIFT on a libvips-decoded grey image: local features for verifying near-copies.
        .target(name: "CVLFeat", dependencies: ["CVips", "CVipsShim"], cSettings: [.unsafeFlags(["-O2"])],
                linkerSettings: [.linkedLibrary("vl")]),
        .systemLibrary(name: "CXNNPACK", providers: [.apt(["libxnnpack-dev", "libpthreadpool-dev"])]),
        .systemLibrary(name: "CBLAS", providers: [.apt(["libopenblas-dev"])]),
        // OpenBLAS kernel choice on CPUs it cannot name (VMs): OPENBLAS_CORETYPE from the CPU's features.
        .target(name: "COpenBLASCore", linkerSettings: [.linkedLibrary("openblas")]),
        // Distance kernels BLAS has no routine for (L1, L-inf, chi-square, Float16 dot),
        // compiled per CPU level (AVX-512 / AVX2 / baseline) and picked at load time.
        // Also the binary-code kernels of the `hash` index (XOR + popcount, candidate selection).
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        // hnswlib (Debian's header-only libhnswlib-dev) behind a small C API for the `hnsw` index.
        .target(name: "CHNSW", cxxSettings: [.unsafeFlags(["-O3", "-std=c++17"])]),
        .target(
            name: "LookalikeEngine",
            dependencies: ["CVipsShim", "CXNNPACK", .product(name: "Crypto", package: "swift-crypto")]
        ),
        // The library, in layers that depend one way (like faiss's): vector indexes and stores know
        // nothing of the catalogue; the catalogue knows nothing of vectors' search; the search
        // pipeline (live library, re-ranking, verification, indexing) joins them; the Milvus backend
        // and evaluation sit on the pipeline.
        .target(
            name: "LookalikeIndex",
            dependencies: [
                "LookalikeEngine", "CBLAS", "CKernels", "CHNSW",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .target(
            name: "LookalikeCatalogue",
            dependencies: ["LookalikeEngine", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        // Near-copy verification: SIFT keypoints, the visual-word file with its stored keypoints and
        // the job that makes it, spatial verification. Below the search pipeline, which runs it as a stage.
        .target(
            name: "LookalikeVerification",
            dependencies: ["LookalikeEngine", "LookalikeIndex", "LookalikeCatalogue", "CKernels", "CVLFeat"]
        ),
        .target(
            name: "LookalikeSearch",
            dependencies: [
                "LookalikeEngine", "LookalikeIndex", "LookalikeCatalogue", "LookalikeVerification", "CBLAS", "CKernels",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .target(
            name: "LookalikeMilvus",
            dependencies: [
                "LookalikeEngine", "LookalikeIndex", "LookalikeCatalogue", "LookalikeSearch",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .target(
            name: "LookalikeEvaluation",
            dependencies: ["LookalikeEngine", "LookalikeIndex", "LookalikeCatalogue", "LookalikeVerification", "LookalikeSearch", "LookalikeMilvus", "CVipsShim"]
        ),
        // The HTTP server: routes, request context, middleware, and the web page's assets
        // (Assets/, embedded in the binary at build time: no Node step, nothing to install beside it).
        .target(
            name: "LookalikeServer",
            dependencies: [
                "LookalikeEngine", "LookalikeIndex", "LookalikeCatalogue", "LookalikeSearch", "LookalikeMilvus",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "MultipartKit", package: "multipart-kit"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            resources: [
                .embedInCode("Assets/index.html"),
                .embedInCode("Assets/app.css"),
                .embedInCode("Assets/app.js"),
                .embedInCode("Assets/login.html"),
                .embedInCode("Assets/openapi.json"),
            ]
        ),
        // What the two command-line programs share (options, console output, tables).
        .target(name: "LookalikeCommandLine",
                dependencies: ["COpenBLASCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        .executableTarget(
            name: "lookalike",
            dependencies: [
                "LookalikeEngine", "LookalikeIndex", "LookalikeCatalogue", "LookalikeVerification", "LookalikeSearch", "LookalikeMilvus",
                "LookalikeEvaluation", "LookalikeServer", "LookalikeCommandLine", "COpenBLASCore",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        // The benchmark and research commands, apart from the product (`make bench` runs them).
        .executableTarget(
            name: "lookalike-bench",
            dependencies: [
                "LookalikeEngine", "LookalikeIndex", "LookalikeCatalogue", "LookalikeSearch", "LookalikeEvaluation",
                "LookalikeCommandLine", "COpenBLASCore", "CVipsShim",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "EngineTests", dependencies: ["LookalikeEngine"], resources: [.copy("Fixtures")]),
        // Depends on the executable so that it is built: the crash-safety tests run it as a subprocess.
        // AsyncHTTPClient: the Milvus tests talk to `lookalike serve --store` over HTTP.
        .testTarget(name: "LibraryTests", dependencies: [
            "LookalikeIndex", "LookalikeCatalogue", "LookalikeVerification", "LookalikeSearch", "LookalikeMilvus", "LookalikeEvaluation", "LookalikeEngine", "lookalike",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
        ], resources: [.copy("Fixtures")]),
        // API tests through HummingbirdTesting, plus the browser test (it runs the executable).
        .testTarget(name: "ServerTests", dependencies: [
            "LookalikeServer", "LookalikeIndex", "LookalikeCatalogue", "LookalikeVerification", "LookalikeSearch", "LookalikeMilvus", "LookalikeEvaluation", "LookalikeEngine", "lookalike",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)
