// Test support: fixture folders built from the bundled sample photos (samples/, Caltech-101) plus
// broken files, one shared engine, temporary folders, and the built `lookalike` executable for the
// subprocess (crash-safety) tests.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import LookalikeEngine
@testable import LookalikeCatalogue
@testable import LookalikeEvaluation
@testable import LookalikeIndex
@testable import LookalikeMilvus
@testable import LookalikeSearch

enum Fixture {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let samples = packageRoot.appendingPathComponent("samples/library")
    static let queries = packageRoot.appendingPathComponent("samples/queries")
    static let classes = ["dalmatian", "sunflower", "airplanes", "Motorbikes", "pizza", "butterfly"]

    private static let sharedEmbedder = Result<Embedder, Error> { try Embedder() }
    static func embedder() throws -> Embedder { try sharedEmbedder.get() }

    /// One folder per test process, removed when the process exits (and left-overs of killed runs
    /// removed when the next run starts).
    static let tempRoot: URL = {
        let base = FileManager.default.temporaryDirectory
        let prefix = "lookalike-tests-"
        for old in (try? FileManager.default.contentsOfDirectory(atPath: base.path)) ?? [] where old.hasPrefix(prefix) {
            if let pid = Int32(old.dropFirst(prefix.count)), kill(pid, 0) != 0 {
                try? FileManager.default.removeItem(at: base.appendingPathComponent(old))
            }
        }
        let root = base.appendingPathComponent("\(prefix)\(getpid())")
        try? FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: Fixture.tempRoot) }
        return root
    }()

    static func tempDir(_ name: String = #function) throws -> URL {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        let url = tempRoot.appendingPathComponent("\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A copy of a committed fixture file (Tests/LibraryTests/Fixtures).
    static func fixtureCopy(_ name: String, into dir: URL) throws -> URL {
        guard let source = Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil) else {
            throw CatalogueError("fixture \(name) missing from the test bundle")
        }
        let dest = dir.appendingPathComponent(name)
        try FileManager.default.copyItem(at: source, to: dest)
        return dest
    }
}

/// Tests on random data use the library's seeded generator, so they reproduce.
typealias SeededGenerator = SplitMix64

enum Synthetic {
    /// `count` unit vectors of `dimension` non-negative values (like pooled CNN features: sparse-ish,
    /// positive), reproducible from `seed`.
    static func unitVectors(_ count: Int, dimension d: Int, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed: seed)
        var v = (0..<count * d).map { _ in Float.random(in: 0...1, using: &rng) * (Bool.random(using: &rng) ? 1 : 0) + 0.001 }
        for r in 0..<count {
            let norm = (0..<d).reduce(Float(0)) { $0 + v[r * d + $1] * v[r * d + $1] }.squareRoot()
            for i in 0..<d { v[r * d + i] /= norm }
        }
        return v
    }
}

extension Fixture {

    /// A library made by indexing a copy of the sample photos (`folder`, 36 images in 9 classes)
    /// in a fresh temporary folder: what tests that change, remove or edit the library's files start from.
    struct IndexedSamples {
        let folder: URL
        let catalogue: Catalogue
        let indexer: Indexer
        /// The first `index` run's summary.
        let first: IndexSummary
    }

    static func indexedSamples(_ name: String = #function) throws -> IndexedSamples {
        let dir = try tempDir(name)
        let folder = dir.appendingPathComponent("photos")
        try copySamples(to: folder)
        let catalogue = try Catalogue(path: dir.appendingPathComponent("lib.db").path)
        let indexer = Indexer(catalogue: catalogue, embedder: try embedder())
        return IndexedSamples(folder: folder, catalogue: catalogue, indexer: indexer, first: try indexer.run(roots: [folder.path]))
    }

    /// Copies the sample photos of `classes` into `folder/<class>/`.
    static func copySamples(to folder: URL, classes: [String] = classes) throws {
        for c in classes {
            let dest = folder.appendingPathComponent(c)
            try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
            for file in try FileManager.default.contentsOfDirectory(atPath: samples.appendingPathComponent(c).path) {
                try FileManager.default.copyItem(at: samples.appendingPathComponent(c).appendingPathComponent(file),
                                                 to: dest.appendingPathComponent(file))
            }
        }
    }

    /// `copies` distinct files per sample photo: the JPEG bytes plus a unique trailer after the
    /// end-of-image marker (decoders ignore it; the content hash differs, so each is embedded).
    static func makeDistinctCopies(in folder: URL, copies: Int) throws -> Int {
        var count = 0
        for c in classes {
            let dest = folder.appendingPathComponent(c)
            try FileManager.default.createDirectory(at: dest, withIntermediateDirectories: true)
            for file in try FileManager.default.contentsOfDirectory(atPath: samples.appendingPathComponent(c).path) {
                let bytes = try Data(contentsOf: samples.appendingPathComponent(c).appendingPathComponent(file))
                for k in 0..<copies {
                    var data = bytes
                    data.append(contentsOf: Array("copy \(k) of \(file)".utf8))
                    try data.write(to: dest.appendingPathComponent("\(k)-\(file)"))
                    count += 1
                }
            }
        }
        return count
    }

    /// The environment commands run in: `index` starts no background job of local features (a
    /// test that wants one asks for it), so a fixture library does not change under a test.
    static func environment(background: Bool = false) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        environment["LOOKALIKE_BACKGROUND"] = background ? nil : "0"
        return environment
    }

    /// The built `lookalike` executable (next to the test bundle).
    static func executable() throws -> URL {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("lookalike"),
            packageRoot.appendingPathComponent(".build/debug/lookalike"),
        ]
        guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0.path) }) else {
            throw CatalogueError("lookalike executable not found next to the tests (build it with `swift build`)")
        }
        return found
    }

    static func launchIndex(folder: URL, db: URL) throws -> Process {
        let process = Process()
        process.executableURL = try executable()
        process.arguments = ["index", folder.path, "--db", db.path]
        process.environment = environment()
        process.currentDirectoryURL = packageRoot
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }
}
