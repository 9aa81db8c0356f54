// A library deleted and made again at the same path, as a person starting over does it: every
// file derived from the old catalogue (snapshot, re-ranking graph, answer lists, an approximate
// index, visual words) is left beside the new one, and none of them may answer for it. Every image
// of the new library, searched by its file through each method and re-ranking, must find itself
// first and nothing but the new library's images; `info --json` must list every derived file as
// made for the new catalogue and current.
import Foundation
import Testing

@Suite(.serialized) struct RecreatedLibraryTests {
    let cli = CommandLineTests()

    /// The results of one `search --batch` line.
    struct Line: Decodable {
        struct Result: Decodable { let path: String; let score: Float; let cosine: Float }
        let query: String
        let results: [Result]?
        let error: String?
    }

    struct Info: Decodable {
        struct Derived: Decodable { let name: String; let current: Bool; let reason: String? }
        let images: Int
        let identity: String
        let derived: [Derived]
    }

    func info(_ db: String) throws -> Info {
        let run = try cli.lookalike(["info", "--db", db, "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        return try JSONDecoder().decode(Info.self, from: Data(run.stdout.utf8))
    }

    @Test func aLibraryMadeAgainAtTheSamePathAnswersFromItsOwnImagesOnly() throws {
        let dir = try Fixture.tempDir()
        let old = dir.appendingPathComponent("old"), new = dir.appendingPathComponent("new")
        try Fixture.copySamples(to: old, classes: ["dalmatian", "sunflower", "airplanes"])
        try Fixture.copySamples(to: new, classes: ["Motorbikes", "pizza", "butterfly"])
        let db = dir.appendingPathComponent("x.db").path

        // The old library with every kind of derived file.
        for arguments in [["index", old.path, "--db", db], ["prepare", "index", "--method", "hnsw:32", "--db", db],
                          ["prepare", "verify", "--db", db, "--words", "64"]] {
            let run = try cli.lookalike(arguments)
            #expect(run.status == 0, "\(arguments): \(run.stderr)")
        }
        let before = try info(db)
        #expect(before.images == 18)
        let kinds = Set(before.derived.map { String($0.name.prefix(while: { $0 != "-" && $0 != "." })) })
        #expect(kinds.isSuperset(of: ["vectors", "diffusion", "answers", "hnsw", "visual"]), "\(before.derived.map(\.name))")
        #expect(before.derived.allSatisfy { $0.current }, "\(before.derived)")
        // No file name holds ':' or ','.
        #expect(before.derived.allSatisfy { !$0.name.contains(":") && !$0.name.contains(",") }, "\(before.derived.map(\.name))")

        // Starting over: the catalogue goes, the folder of derived files stays.
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
        let oldFiles = Set(try FileManager.default.contentsOfDirectory(atPath: db + ".indexes"))
        #expect(!oldFiles.isEmpty)
        // A catalogue that exists but has not been indexed yet sees the old files as another catalogue's.
        let reindex = try cli.lookalike(["index", new.path, "--db", db])
        #expect(reindex.status == 0, "\(reindex.stderr)")

        let after = try info(db)
        #expect(after.images == 18)
        #expect(after.identity != before.identity)
        #expect(after.derived.allSatisfy { $0.current }, "\(after.derived)")

        // Every image of the new library, through each method and re-ranking.
        let photos = try FileManager.default.subpathsOfDirectory(atPath: new.path).filter { $0.hasSuffix(".jpg") }.sorted()
            .map { new.appendingPathComponent($0).path }
        #expect(photos.count == 18)
        let list = dir.appendingPathComponent("queries.txt")
        // Queries given as files outside the library's paths are embedded; as library paths they are
        // library images (answer lists, graph expansion): both ways.
        try photos.joined(separator: "\n").write(to: list, atomically: true, encoding: .utf8)
        for options in [[String](), ["--rerank", "none"], ["--method", "hnsw:32"], ["--verify", "10"]] {
            let run = try cli.lookalike(["search", "--batch", list.path, "--db", db, "-k", "5", "--include-self"] + options)
            #expect(run.status == 0, "\(options): \(run.stderr)")
            let lines = try run.stdout.split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
            #expect(lines.count == photos.count, "\(options)")
            for line in lines {
                let results = line.results ?? []
                #expect(line.error == nil && results.count == 5, "\(options) \(line.query): \(line.error ?? "\(results.count) results")")
                #expect(results.first?.path == line.query, "\(options) \(line.query): first \(results.first?.path ?? "none")")
                #expect(results.allSatisfy { $0.path.hasPrefix(new.path + "/") }, "\(options) \(line.query): \(results.map(\.path))")
            }
        }
        // Search by file content too (an outside copy of each image): it finds its original first.
        let copies = dir.appendingPathComponent("copies")
        try FileManager.default.createDirectory(at: copies, withIntermediateDirectories: true)
        var copyList: [String] = []
        for (i, photo) in photos.enumerated() {
            let copy = copies.appendingPathComponent("q\(i).jpg")
            try FileManager.default.copyItem(atPath: photo, toPath: copy.path)
            copyList.append(copy.path)
        }
        try copyList.joined(separator: "\n").write(to: list, atomically: true, encoding: .utf8)
        let run = try cli.lookalike(["search", "--batch", list.path, "--db", db, "-k", "3"])
        #expect(run.status == 0, "\(run.stderr)")
        let lines = try run.stdout.split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
        for (line, photo) in zip(lines, photos) {
            #expect(line.results?.first?.path == photo, "\(line.query): \(line.results?.map(\.path) ?? [])")
            #expect((line.results?.first?.cosine ?? 0) > 0.999, "\(line.query)")
        }
    }
}
