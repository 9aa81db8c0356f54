// `lookalike eval`: measures retrieval quality on a labelled library (labels = folder names) with
// a search method and re-ranking: P@k, R@k, F1@k, mAP, precision at each rank, a per-class table
// (worst first), time per query against exact; JSON with --json, a visual report with --html.
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

extension EvaluationOptions.Clutter: ExpressibleByArgument {}

struct EvalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Measure retrieval quality (precision, recall, F1, mAP) on a labelled library.",
        discussion: """
            Labels are the images' folder names. Every labelled image with at least one other image of \
            its label is a query (or --queries N of them, or those listed in --queries-from); each \
            ranks all other images. Images in a folder named BACKGROUND_Google are clutter: searched \
            against, never a query or relevant (--clutter exclude leaves them out, as the reference \
            peer does). With the exact method mAP is over the full ranking; coarse methods are judged \
            on the top 1,000 they return, relevant images they miss counting as misses.
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Cut-off rank for P@k, R@k, F1@k and the precision-at-rank curve.")
    var k: Int = 20

    @Option(help: "Queries: all, or a number to sample (with --seed).")
    var queries: String = "all"

    @Option(help: "File listing query images, one library path per line (absolute or like saxophone/image_0016.jpg).")
    var queriesFrom: String?

    @Option(help: "Only the labelled images under this folder of the library are queries (one group of a mixed library, e.g. ukbench500 with --k 3); the whole library is searched.")
    var queriesUnder: String?

    @Option(help: "Seed for sampled queries.")
    var seed: UInt64 = 0

    @Option(help: "Index method descriptor (known: \(IndexFactory.names.joined(separator: ", "))).")
    var method: String = ExactIndex.methodName

    @Option(help: "Re-ranking: default, none, or steps like dba:15+qe:10+diff:30 (alpha: the library descriptor's, 5 for whole+rmac; ',alpha=A' to change).")
    var rerank: String = Reranking.libraryDefault.description

    @Option(help: "Clutter images (BACKGROUND_Google): distractor (searched against) or exclude.")
    var clutter: EvaluationOptions.Clutter = .distractor

    @Option(help: "Evaluate a vector store instead of the local library: milvus://HOST:PORT/COLLECTION (labels, paths and vectors from the collection; its own index ranks; query expansion applies, augmentation and diffusion too once `prepare rerank` has run).")
    var store: String?

    @Flag(help: "Rank each query as an upload of the same photo would be ranked (its raw vector, no diffusion from its own node, itself left out).")
    var asOutside = false

    @Flag(help: "Print the report as JSON.")
    var json = false

    @Option(help: "Also write a self-contained HTML report to this file.")
    var html: String?

    func validate() throws {
        guard k > 0 else { throw ValidationError("--k must be at least 1") }
        guard queries == "all" || (Int(queries) ?? 0) > 0 else { throw ValidationError("--queries must be 'all' or a positive number") }
        _ = try IndexDescriptor(parsing: method)
        _ = try Reranking(parsing: rerank)
        if let store {
            do { _ = try MilvusAddress(parsing: store) } catch { throw ValidationError(String(describing: error)) }
            guard html == nil else { throw ValidationError("--html needs the local library's images (thumbnails); drop it with --store") }
        }
    }

    func run() async throws {
        var options = EvaluationOptions()
        options.k = k
        options.seed = seed
        options.method = try IndexDescriptor(parsing: method)
        options.reranking = try Reranking(parsing: rerank)
        options.clutter = clutter
        options.asOutside = asOutside
        if let queriesFrom {
            guard let text = try? String(contentsOfFile: queriesFrom, encoding: .utf8) else {
                throw Failure(message: "\(queriesFrom): cannot read the query list")
            }
            options.queries = .paths(text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") })
        } else if let queriesUnder {
            options.queries = .under(queriesUnder)
        } else if let n = Int(queries) {
            options.queries = .sample(n)
        }
        let terminal = Console.stderrIsTerminal
        let progress: @Sendable (Int, Int) -> Void = { done, total in
            if terminal { FileHandle.standardError.write(Data("\r\u{1B}[2Keval: \(done)/\(total) queries".utf8)) }
        }
        let report: EvaluationReport
        if let store {
            report = try await StoreEvaluator.run(store: MilvusStore(address: try MilvusAddress(parsing: store)), options: options,
                                                  progress: progress)
            if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
            try present(report)
            return
        }
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let library = try LiveLibrary(catalogue: catalogue)
        var local = try await Evaluator.run(library: library, options: options, progress: progress)
        local.per_group = Evaluator.groups(local.per_query, roots: try catalogue.libraryRoots())
        report = local
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        if let html {
            let thumbnails = ReportThumbnails(catalogue: catalogue)
            let page = try EvaluationHTML.render(report, thumbnails: thumbnails)
            try page.write(toFile: html, atomically: true, encoding: .utf8)
            // A copy beside the catalogue, served by `lookalike serve` at /report.
            let copy = EvaluationHTML.libraryCopy(for: catalogue)
            try? FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
            try? page.write(to: copy, atomically: true, encoding: .utf8)
        }
        try present(report)
        if let html, !json { print("\nreport: \(html)") }
    }

    func present(_ report: EvaluationReport) throws {
        if json {
            print(try Console.json(report))
            return
        }
        print("library:   \(report.library) (\(report.images) images, clutter: \(report.clutter))")
        print("method:    \(report.method), re-ranking \(report.reranking); AP over the \(report.apOver)")
        print("queries:   \(report.queries), k = \(report.k)")
        print(table(["P@\(k)", "R@\(k)", "F1@\(k)", "mAP", "ms/query", "exact ms/query", "time saved"],
                    [[format(report.precision_at_k, 4), format(report.recall_at_k, 4), format(report.f1_at_k, 4),
                      format(report.map, 4), format(report.ms_per_query, 2),
                      report.exact_ms_per_query > 0 ? format(report.exact_ms_per_query, 2) : "-",
                      report.exact_ms_per_query > 0 ? "\(format(report.time_reduction_percent, 1)) %" : "-"]], rightAligned: Set(0..<7)))
        if report.preparation_s > 0.01 { print("re-ranking preparation: \(format(report.preparation_s, 2)) s") }
        let ranks = report.precision_at_rank.enumerated().map { "P@\($0.offset + 1)=\(format($0.element, 3))" }
        print("precision at rank: " + ranks.joined(separator: " "))
        if !report.per_group.isEmpty {
            print("\nper folder the library was indexed from:")
            print(table(["folder", "queries", "P@\(k)", "R@\(k)", "mAP"],
                        report.per_group.map { [$0.folder, String($0.queries), format($0.precisionAtK, 4), format($0.recallAtK, 4), format($0.map, 4)] },
                        rightAligned: [1, 2, 3, 4]))
        }
        print("\nworst classes:")
        print(table(["label", "queries", "P@\(k)", "R@\(k)", "mAP"],
                    report.per_class.prefix(10).map { [$0.label, String($0.queries), format($0.precisionAtK, 3), format($0.recallAtK, 3), format($0.map, 3)] },
                    rightAligned: [1, 2, 3, 4]))
    }
}
