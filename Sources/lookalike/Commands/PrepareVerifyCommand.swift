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
import LookalikeVerification

struct PrepareVerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Make (or bring up to date) the library's local features now; `index` starts this in the background itself.",
        discussion: """
            Computes every library image's SIFT keypoints (decode and SIFT at up to \(LocalFeatures.maximumSide) px, \
            30-100 ms of one core an image, on all cores), learns a vocabulary of visual words from a sample of them \
            (k-means), and keeps each image's keypoints as words and positions beside the library \
            (LIBRARY.db.indexes/visual-words.lkix, about \(WordKeypoints.bytesPerKeypoint * 600 / 1000) kB an image). \
            Searches of an image given as a file, URL or upload then verify their candidates by these stored \
            keypoints, and also check the \(VisualWordIndex.candidates) images sharing the most words with the query. \
            `lookalike index` starts this job in the background when the file is missing or behind; run it here to \
            wait for it (it waits for a background job at it first). --rebuild learns a new vocabulary.
            """)

    @OptionGroup var database: DatabaseOption
    @Option(help: "Words in a new vocabulary (fewer when the library gives too few features).")
    var words: Int = VisualWordIndex.defaultWords
    @Flag(help: "Learn a new vocabulary and recompute every image.") var rebuild = false
    @Flag(help: "Print JSON.") var json = false
    /// The job `index` starts: leaves at once when another process is at it; prints nothing.
    @Flag(help: .hidden) var background = false

    func validate() throws {
        guard (16...65536).contains(words) else { throw ValidationError("--words must be 16 to 65536") }
    }

    func run() throws {
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let url = VisualWordIndex.url(for: catalogue)
        let terminal = Console.stderrIsTerminal && !json && !background
        let started = Date()
        if !background, let job = LocalFeaturesJob.running(for: catalogue) {
            Console.error("waiting for the background job at it (pid \(job.pid), \(job.done)/\(job.total) images)...")
        }
        let summary = try LocalFeaturesJob.run(catalogue: catalogue, liveIds: { try LiveLibrary(catalogue: catalogue).store.liveIds },
                                               words: words, rebuild: rebuild, wait: !background) { done, total in
            if terminal && (done % 50 == 0 || done == total) {
                FileHandle.standardError.write(Data("\r\u{1B}[2Klocal features: \(done)/\(total) images".utf8))
            }
        }
        if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
        if background { return }
        if json {
            print(try Console.json(summary))
            return
        }
        guard let summary else {
            print("local features (\(url.path)): already up to date")
            return
        }
        print("local features (\(url.path)): \(summary.words) visual words\(summary.trained ? " learnt" : ""), \(summary.images) images "
              + "(\(summary.added) added, \(summary.removed) removed) in \(format(Date().timeIntervalSince(started), 1)) s")
        if !summary.unreadable.isEmpty {
            print("without local features (searched by their global descriptor only):")
            for path in summary.unreadable { print("  \(path)") }
        }
    }
}
