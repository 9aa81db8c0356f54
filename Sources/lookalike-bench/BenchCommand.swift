// `lookalike-bench robustness`: edited copies of library photos (crops, rotations, exposure,
// contrast, scale, JPEG quality 10, blur, occlusion, mirror, text) searched against the library:
// recall@1 and recall@5 of the original per edit, as a table, JSON or an HTML page.
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct RobustnessCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "robustness",
        abstract: "Search with edited copies of library photos and report how often the original comes first.",
        discussion: """
            The library (--db) must already hold the folder's images; every other image in it is a \
            distractor (for Caltech-101: index the whole dataset). A seeded sample of the folder's \
            images is edited 14 ways with libvips, each copy embedded and searched.
            """)

    @Argument(help: "Folder of library images to sample from.")
    var folder: String

    @OptionGroup var database: DatabaseOption

    @Option(help: "Images to sample.") var sample: Int = 200
    @Option(help: "Seed of the sample.") var seed: UInt64 = 0
    @Option(help: "Re-ranking: default, none, or steps like dba:15+qe:10+diff:30.") var rerank: String = Reranking.libraryDefault.description
    @Option(help: "Spatial verification: check this many best candidates' local features against the copy's (0: off; default: as a search decides, per copy).")
    var verify: Int?
    @Option(name: .customLong("edit"), help: "Only this edit (repeatable; default: all 14), e.g. --edit 'grey square 25%'.")
    var edits: [String] = []
    @Option(help: "Weights file (default: $LOOKALIKE_MODEL or models/efficientnet-lite0.lkw).") var model: String?
    @Flag(help: "Print JSON.") var json = false
    @Option(help: "Also write an HTML page to this file.") var html: String?

    func validate() throws {
        guard sample > 0 else { throw ValidationError("--sample must be at least 1") }
        guard (0...SearchRequest.maximumVerify).contains(verify ?? 0) else {
            throw ValidationError("--verify must be 0 (off) to \(SearchRequest.maximumVerify)")
        }
        _ = try Reranking(parsing: rerank)
        _ = try transformations()
    }

    func transformations() throws -> [Transformation] {
        guard !edits.isEmpty else { return Transformation.standard }
        return try edits.map { name in
            guard let t = Transformation.standard.first(where: { $0.name == name }) else {
                throw ValidationError("--edit '\(name)': no such edit; the edits are: "
                                      + Transformation.standard.map { "'\($0.name)'" }.joined(separator: ", "))
            }
            return t
        }
    }

    func run() async throws {
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let embedder = try Embedder(weightsURL: model.map { URL(fileURLWithPath: $0) }, descriptor: try catalogue.storedDescriptor())
        try catalogue.verify(model: embedder.model)
        let library = try LiveLibrary(catalogue: catalogue)
        let service = SearchService(library: library, resolver: QueryResolver(library: library) { _ in embedder })
        let terminal = Console.stderrIsTerminal
        let report = try await RobustnessBenchmark.run(service: service, embedder: embedder, folder: folder, sample: sample,
                                                 seed: seed, transformations: try transformations(), reranking: try Reranking(parsing: rerank), verify: verify) { done, total in
            if terminal && (done % 20 == 0 || done == total) {
                FileHandle.standardError.write(Data("\r\u{1B}[2Krobustness: \(done)/\(total) queries".utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        if let html { try RobustnessBenchmark.html(report).write(toFile: html, atomically: true, encoding: .utf8) }
        if json {
            print(try Console.json(report))
            return
        }
        print("\(report.sample) photos from \(folder), searched against \(report.images) images; re-ranking \(report.reranking)")
        print(table(["edit", "queries", "recall@1", "recall@5", "strict @1", "strict @5", "failed"],
                    report.rows.map {
                        [$0.transformation, String($0.queries), format($0.recall_at_1, 3), format($0.recall_at_5, 3),
                         format($0.recall_at_1_strict, 3), format($0.recall_at_5_strict, 3), String($0.failures)]
                    },
                    rightAligned: [1, 2, 3, 4, 5, 6]))
        print("recall@k: the original or a library image that is the same picture (identical pixels up to re-encoding, "
              + "directly or mirrored) is in the top k; strict: the original itself")
        if !report.misses.isEmpty {
            print("\(report.misses.count) copies did not find their original itself first (--json or --html lists them)")
        }
        print("\(format(report.seconds, 1)) s")
    }
}
