// `lookalike prepare verify`: builds (or brings up to date) the library's visual-word index, the
// second source of candidates for verified searches (`search --verify`, `verify=` in the API,
// `lookalike-bench robustness --verify`): originals the global descriptor ranks low but whose local
// features survive the edit. Once it exists, `index` keeps it current.
import ArgumentParser
import Foundation
import LookalikeCatalogue
import LookalikeCommandLine
import LookalikeEngine
import LookalikeEvaluation
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

struct PrepareVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Build the library's visual-word index, so that verified searches also find originals by their local features.",
        discussion: """
            Computes every library image's SIFT keypoints (decode and SIFT at up to \(LocalFeatures.maximumSide) px, \
            30-100 ms of one core an image, on all cores), learns a vocabulary of visual words from a sample of them \
            (k-means), and writes each image's words beside the library (LIBRARY.db.indexes/visual-words.lkix). \
            A verified search then checks, besides its shortlist, the \(VisualWordIndex.candidates) images sharing \
            the most words with the query. Run again after indexing elsewhere; `index` updates the file itself \
            once it exists. --rebuild learns a new vocabulary.
            """)

    @OptionGroup var database: DatabaseOption
    @Option(help: "Words in a new vocabulary (fewer when the library gives too few features).")
    var words: Int = VisualWordIndex.defaultWords
    @Flag(help: "Learn a new vocabulary and recompute every image.") var rebuild = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (16...65536).contains(words) else { throw ValidationError("--words must be 16 to 65536") }
    }

    func run() throws {
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let library = try LiveLibrary(catalogue: catalogue)
        let url = VisualWordIndex.url(for: catalogue)
        var previous: VisualWordIndex?
        if !rebuild {
            do {
                previous = try VisualWordIndex.read(url, catalogue: catalogue.identity)
            } catch {
                Console.error("note: \(error); rebuilding it")
            }
        }
        let images = try VisualWordIndex.libraryImages(catalogue: catalogue, liveIds: library.store.liveIds)
        let terminal = Console.stderrIsTerminal && !json
        let started = Date()
        if previous == nil && !json { Console.error("learning \(words) visual words from a sample of \(images.count) images...") }
        let (index, summary) = try VisualWordIndex.build(images: images, previous: previous, words: words) { done, total in
            if terminal && (done % 50 == 0 || done == total) {
                FileHandle.standardError.write(Data("\r\u{1B}[2Kvisual words: \(done)/\(total) images".utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        try index.write(to: url, origin: FileOrigin(catalogue: catalogue.identity, counter: library.counter))
        if json {
            print(try Console.json(summary))
            return
        }
        print("visual words (\(url.path)): \(summary.words) words\(summary.trained ? " learnt" : ""), \(summary.images) images "
              + "(\(summary.added) added, \(summary.kept) kept, \(summary.removed) removed) in \(format(Date().timeIntervalSince(started), 1)) s")
        if !summary.unreadable.isEmpty {
            print("without local features (left to the global shortlist):")
            for path in summary.unreadable { print("  \(path)") }
        }
    }
}
