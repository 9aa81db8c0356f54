// Test support: fixture folders built from the bundled sample photos (samples/, Caltech-101) plus
// broken files, one shared engine, temporary folders, and the built `lookalike` executable for the
// subprocess (crash-safety) tests.
import Foundation
import LookalikeEngine
@testable import LookalikeLibrary

enum Fixture {
    static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let samples = packageRoot.appendingPathComponent("samples/library")
    static let queries = packageRoot.appendingPathComponent("samples/queries")
    static let classes = ["dalmatian", "sunflower", "airplanes", "Motorbikes", "pizza", "butterfly"]

    private static let sharedEmbedder = Result<Embedder, Error> { try Embedder() }
    static func embedder() throws -> Embedder { try sharedEmbedder.get() }

    static func tempDir(_ name: String = #function) throws -> URL {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lookalike-tests-\(safe)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
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
        process.currentDirectoryURL = packageRoot
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return process
    }
}
