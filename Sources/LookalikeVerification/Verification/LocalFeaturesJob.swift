// Making the library's local features (`visual-words.lkix`: each image's keypoints as visual words
// and frames) without making `index` wait for them. SIFT costs 30-100 ms of one core an image, four
// to eight times the embedding, so `lookalike index` embeds, stores and answers as before, then
// starts this job in a process of its own (`lookalike prepare verify --background`), which works
// through the images in chunks and writes the file after each: searches use what is there (a
// candidate without stored keypoints is checked from its file), `info` shows the progress, and an
// interrupted job is resumed by the next `index`. One process at a time holds the job's lock; the
// file is replaced whole (IndexFile's temporary-and-rename), so a reader never sees half of it.
import Foundation
import LookalikeCatalogue
import LookalikeIndex
#if canImport(Glibc)
import Glibc
#endif

public enum LocalFeaturesJob {
    /// Images computed between two writes of the file.
    public static let chunk = 500
    /// `index` brings the file up to date itself when this few images are missing from it (a few
    /// seconds of SIFT); more are left to the background job.
    public static let inline = 200

    static func lockURL(for catalogue: Catalogue) -> URL {
        catalogue.derivedFolder.appendingPathComponent(".visual-words.lock")
    }

    static func progressURL(for catalogue: Catalogue) -> URL {
        catalogue.derivedFolder.appendingPathComponent(".visual-words.progress")
    }

    /// The job's lock (an advisory `flock`, released when the process ends, however it ends).
    final class Lock {
        private let fd: Int32
        /// nil: another process holds it (and `wait` was false).
        init?(_ url: URL, wait: Bool) throws {
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            let fd = open(url.path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw IndexError("\(url.path): cannot open the local-features lock: \(String(cString: strerror(errno)))") }
            guard flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) == 0 else {
                close(fd)
                return nil
            }
            self.fd = fd
        }
        deinit {
            flock(fd, LOCK_UN)
            close(fd)
        }
    }

    /// What a running job has done, as it writes it beside the file.
    public struct Progress: Sendable, Codable {
        public let pid: Int32
        public let done: Int
        public let total: Int
        public let started: Date
    }

    /// The job running for `catalogue` in another process, if one is (read-only: never creates the lock).
    public static func running(for catalogue: Catalogue) -> Progress? {
        let fd = open(lockURL(for: catalogue).path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        if flock(fd, LOCK_SH | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return nil
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return (try? Data(contentsOf: progressURL(for: catalogue))).flatMap { try? decoder.decode(Progress.self, from: $0) }
            ?? Progress(pid: 0, done: 0, total: 0, started: Date())
    }

    /// How many of `liveIds` the file lacks (all of them when there is no usable file), and whether
    /// it holds images no longer in the library.
    public static func missing(catalogue: Catalogue, liveIds: [Int64]) -> (missing: Int, stale: Bool) {
        guard let index = try? VisualWordIndex.read(VisualWordIndex.url(for: catalogue), catalogue: catalogue.identity) else {
            return (liveIds.count, false)
        }
        let live = Set(liveIds)
        let missing = live.filter { index.entries[$0] == nil }.count
        return (missing, index.entries.keys.contains { !live.contains($0) })
    }

    /// Brings the file up to date with the library as it is now, `chunk` images at a time, and
    /// again if images were indexed meanwhile. nil when another process holds the job and `wait`
    /// is false. `rebuild`: a new vocabulary and every image again.
    public static func run(catalogue: Catalogue, liveIds: () throws -> [Int64], words: Int = VisualWordIndex.defaultWords,
                           rebuild: Bool = false, wait: Bool,
                           progress: (@Sendable (Int, Int) -> Void)? = nil) throws -> VisualWordIndex.BuildSummary? {
        guard let lock = try Lock(lockURL(for: catalogue), wait: wait) else { return nil }
        defer { try? FileManager.default.removeItem(at: progressURL(for: catalogue)) }
        let url = VisualWordIndex.url(for: catalogue)
        var previous = rebuild ? nil : (try? VisualWordIndex.read(url, catalogue: catalogue.identity)) ?? nil
        let started = Date()
        var total: VisualWordIndex.BuildSummary?
        for _ in 0..<3 {
            let counter = try catalogue.changeCounter()
            let images = try VisualWordIndex.libraryImages(catalogue: catalogue, liveIds: liveIds())
            let live = Set(images.map(\.id))
            if let previous, previous.entries.count == live.count, previous.entries.keys.allSatisfy(live.contains) {
                // Same images: the words stand; the file is stamped with the counter it is current at.
                if let header = try? IndexFile.read(url, catalogue: catalogue.identity, verifyChecksum: false).header,
                   header.catalogueCounter != counter {
                    try previous.write(to: url, origin: FileOrigin(catalogue: catalogue.identity, counter: counter))
                }
                break
            }
            var pending = 0
            repeat {
                let have = previous.map { index in images.filter { index.entries[$0.id] != nil }.count } ?? 0
                write(Progress(pid: getpid(), done: have, total: images.count, started: started), catalogue: catalogue)
                let (index, summary) = try VisualWordIndex.build(images: images, previous: previous,
                                                                 words: previous?.vocabulary.count ?? words, limit: chunk) { done, _ in
                    progress?(have + done, images.count)
                }
                try index.write(to: url, origin: FileOrigin(catalogue: catalogue.identity, counter: counter))
                previous = index
                total = total.map { $0.adding(summary) } ?? summary
                pending = summary.pending
            } while pending > 0
        }
        withExtendedLifetime(lock) {}
        return total
    }

    private static func write(_ progress: Progress, catalogue: Catalogue) {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        guard let data = try? encoder.encode(progress) else { return }
        try? data.write(to: progressURL(for: catalogue), options: .atomic)
    }

    /// Starts `lookalike prepare verify --background` for the library at `db` in a session of its
    /// own (it outlives the command that started it and a closed terminal), output discarded.
    /// Returns its pid, nil when it could not start. `LOOKALIKE_BACKGROUND=0` turns it off.
    public static func startInBackground(db: String) -> Int32? {
        guard ProcessInfo.processInfo.environment["LOOKALIKE_BACKGROUND"] != "0" else { return nil }
        guard let executable = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") else { return nil }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // POSIX_SPAWN_SETSID (glibc 2.26+; the constant is not imported into Swift).
        posix_spawnattr_setflags(&attributes, Int16(0x80))
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd in [Int32(0), 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
        let arguments = [executable, "prepare", "verify", "--db", db, "--background"]
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, &argv, environ)
        return status == 0 ? pid : nil
    }
}
