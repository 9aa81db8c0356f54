// The `lookalike` executable end to end, as a user runs it: index + search with JSON output,
// a query by URL served from a tiny local HTTP server (content-type and status checks), embed's
// JSON and exit status, and info/export/dedupe on the same library.
import Foundation
import Glibc
import Testing
import LookalikeVerification

/// A one-file HTTP/1.0 server on 127.0.0.1 (an ephemeral port) for the URL-query tests.
final class TinyHTTPServer: @unchecked Sendable {
    let port: UInt16
    private let fd: Int32
    private let routes: [String: (type: String, body: Data)]

    init(routes: [String: (type: String, body: Data)]) throws {
        self.routes = routes
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, len) } }
        guard sock >= 0, bound == 0, listen(sock, 8) == 0 else { throw POSIXError(.EADDRINUSE) }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        fd = sock
        port = UInt16(bigEndian: addr.sin_port)
        Thread.detachNewThread { [self] in serve() }
    }

    private func serve() {
        while true {
            let client = accept(fd, nil, nil)
            if client < 0 { return }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = read(client, &buffer, buffer.count)
            let request = String(decoding: buffer.prefix(max(0, n)), as: UTF8.self)
            let path = request.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
            var response: Data
            if let route = routes[path] {
                response = Data("HTTP/1.0 200 OK\r\nContent-Type: \(route.type)\r\nContent-Length: \(route.body.count)\r\nConnection: close\r\n\r\n".utf8)
                response.append(route.body)
            } else {
                response = Data("HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".utf8)
            }
            response.withUnsafeBytes { _ = write(client, $0.baseAddress, $0.count) }
            close(client)
        }
    }

    deinit { close(fd) }
}

@Suite(.serialized) struct CommandLineTests {
    struct Run { let status: Int32; let stdout: String; let stderr: String }

    func lookalike(_ arguments: [String], background: Bool = false) throws -> Run {
        let process = Process()
        process.executableURL = try Fixture.executable()
        process.arguments = arguments
        process.environment = Fixture.environment(background: background)
        process.currentDirectoryURL = Fixture.packageRoot
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Run(status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
                   stderr: String(decoding: stderr, as: UTF8.self))
    }

    struct SearchJSON: Decodable {
        struct Result: Decodable { let rank: Int; let id: Int64; let path: String; let label: String; let score: Float; let distance: Float }
        let query: String, metric: String, method: String, elapsed_ms: Double
        let results: [Result]
    }

    /// A new library gets the default descriptor or the one asked for, and keeps it: a rerun asking
    /// for another is refused, a rerun asking for none goes on with the library's own.
    @Test func aLibraryKeepsItsDescriptor() throws {
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        try Fixture.copySamples(to: folder, classes: ["pizza", "dalmatian"])
        let old = dir.appendingPathComponent("old.db").path, new = dir.appendingPathComponent("new.db").path
        let first = try lookalike(["index", folder.path, "--db", old, "--descriptor", "centre-crop"])
        #expect(first.status == 0, "\(first.stderr)")
        #expect(try lookalike(["info", "--db", old]).stdout.contains("model:     efficientnet-lite0 (weights"))
        let other = try lookalike(["index", folder.path, "--db", old, "--descriptor", "whole+rmac"])
        #expect(other.status != 0 && other.stderr.contains("indexed with the centre-crop descriptor"), "\(other.stderr)")
        let again = try lookalike(["index", folder.path, "--db", old])
        #expect(again.status == 0 && again.stdout.contains("unchanged 12"), "\(again.stdout) \(again.stderr)")
        #expect(try lookalike(["index", folder.path, "--db", new]).status == 0)
        #expect(try lookalike(["info", "--db", new]).stdout.contains("model:     efficientnet-lite0/whole+rmac (weights"))
        // Each library's queries are embedded its own way: a library photo searched as a file
        // finds itself at cosine 1 in both.
        let photo = folder.appendingPathComponent("pizza/image_0001.jpg").path
        for db in [old, new] {
            let found = try lookalike(["search", photo, "--db", db, "-k", "1", "--rerank", "none", "--json"])
            let answer = try JSONDecoder().decode(SearchJSON.self, from: Data(found.stdout.utf8))
            #expect(answer.results.first?.path.hasSuffix("pizza/image_0001.jpg") == true && (answer.results.first?.score ?? 0) > 0.9999,
                    "\(db): \(found.stdout)")
        }
    }

    @Test func indexThenSearchByFileAndByURL() throws {
        let dir = try Fixture.tempDir()
        let db = dir.appendingPathComponent("lib.db").path
        let index = try lookalike(["index", Fixture.samples.path, "--db", db, "--failures", dir.appendingPathComponent("f.txt").path])
        #expect(index.status == 0, "\(index.stderr)")
        #expect(index.stdout.contains("indexed 36, unchanged 0, updated 0, removed 0, failed 0"))

        let query = Fixture.queries.appendingPathComponent("airplanes_0010.jpg")
        let byFile = try lookalike(["search", query.path, "--db", db, "-k", "4", "--json"])
        #expect(byFile.status == 0, "\(byFile.stderr)")
        let fileResult = try JSONDecoder().decode(SearchJSON.self, from: Data(byFile.stdout.utf8))
        #expect(fileResult.results.map(\.rank) == [1, 2, 3, 4])
        #expect(fileResult.results.allSatisfy { $0.label == "airplanes" })
        #expect(fileResult.metric == "cosine" && fileResult.method == "exact")

        let server = try TinyHTTPServer(routes: [
            "/plane.jpg": ("image/jpeg", try Data(contentsOf: query)),
            "/notes.txt": ("text/plain", Data("hello".utf8)),
        ])
        let byURL = try lookalike(["search", "http://127.0.0.1:\(server.port)/plane.jpg", "--db", db, "-k", "4", "--json"])
        #expect(byURL.status == 0, "\(byURL.stderr)")
        let urlResult = try JSONDecoder().decode(SearchJSON.self, from: Data(byURL.stdout.utf8))
        #expect(urlResult.results.map(\.id) == fileResult.results.map(\.id))

        let text = try lookalike(["search", "http://127.0.0.1:\(server.port)/notes.txt", "--db", db])
        #expect(text.status != 0 && text.stderr.contains("not an image"))
        let missing = try lookalike(["search", "http://127.0.0.1:\(server.port)/gone.jpg", "--db", db])
        #expect(missing.status != 0 && missing.stderr.contains("404"))

        let byPath = try lookalike(["search", "--path", Fixture.samples.appendingPathComponent("pizza/image_0001.jpg").path,
                                    "--db", db, "--metric", "chi2", "--json"])
        let pathResult = try JSONDecoder().decode(SearchJSON.self, from: Data(byPath.stdout.utf8))
        #expect(!pathResult.results.contains { $0.path.hasSuffix("pizza/image_0001.jpg") })
        #expect(pathResult.results.first?.label == "pizza")

        let info = try lookalike(["info", "--db", db])
        #expect(info.stdout.contains("images:    36 (36 files, 6 labels)"))
        let noLibrary = try lookalike(["search", query.path, "--db", dir.appendingPathComponent("none.db").path])
        #expect(noLibrary.status != 0 && noLibrary.stderr.contains("no library"))
    }

    /// `index` starts the library's local features in the background and says so; `info` follows
    /// the job until the file is current; then a plain `search` of an edited copy (no options)
    /// puts its original first, verified.
    @Test func indexMakesLocalFeaturesInTheBackgroundAndSearchUsesThem() throws {
        let dir = try Fixture.tempDir()
        let folder = dir.appendingPathComponent("photos")
        try Fixture.copySamples(to: folder)
        let db = dir.appendingPathComponent("lib.db").path
        let index = try lookalike(["index", folder.path, "--db", db], background: true)
        #expect(index.status == 0, "\(index.stderr)")
        #expect(index.stdout.contains("local features of 36 images: being made in the background"), "\(index.stdout)")
        struct Info: Decodable {
            struct Derived: Decodable { let name: String; let kind: String; let current: Bool; let reason: String? }
            let derived: [Derived]
        }
        var current = false
        for _ in 0..<240 where !current {
            let info = try JSONDecoder().decode(Info.self, from: Data(try lookalike(["info", "--db", db, "--json"]).stdout.utf8))
            let features = try #require(info.derived.first { $0.kind == "local features" })
            current = features.current
            if !current {
                #expect(features.reason?.contains("background") == true, "\(features.reason ?? "")")
                usleep(500_000)
            }
        }
        #expect(current, "the background job did not finish in two minutes")
        let photo = folder.appendingPathComponent("airplanes/image_0004.jpg").path
        let edited = dir.appendingPathComponent("edited.jpg")
        try Data(VerificationTests.edited(photo, "grey square 25%")).write(to: edited)
        struct Answer: Decodable {
            struct Result: Decodable { let path: String; let inliers: Int? }
            let reranking: String
            let results: [Result]
        }
        let search = try lookalike(["search", edited.path, "--db", db, "--json"])
        #expect(search.status == 0, "\(search.stderr)")
        let answer = try JSONDecoder().decode(Answer.self, from: Data(search.stdout.utf8))
        #expect(answer.results.first?.path == photo && answer.results.first?.inliers != nil, "\(answer.results.map(\.path))")
        #expect(answer.reranking.contains("+verify:") && answer.reranking.contains("+words:"), "\(answer.reranking)")
    }

    @Test func embedPrintsJSONAndFailsOnBadFiles() throws {
        let dir = try Fixture.tempDir()
        let bad = dir.appendingPathComponent("notes.jpg")
        try Data("not a picture".utf8).write(to: bad)
        let good = Fixture.queries.appendingPathComponent("dalmatian_0010.jpg").path
        let run = try lookalike(["embed", good, bad.path, "--json"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("notes.jpg"))
        struct Item: Decodable {
            struct Top: Decodable { let `class`: Int; let label: String; let prob: Float }
            let path: String; let width: Int?; let height: Int?; let top5: [Top]?; let error: String?
        }
        let items = try JSONDecoder().decode([Item].self, from: Data(run.stdout.utf8))
        #expect(items.count == 2)
        #expect(items[0].top5?.first?.class == 251)   // Dalmatian
        #expect(items[0].width == 300 && items[0].height == 283)
        #expect(items[1].error?.contains("notes.jpg") == true && items[1].top5 == nil)
    }
}
