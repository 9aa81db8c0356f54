// `lookalike serve`: the web app and JSON API over a library, from this one binary (LookalikeServer
// does the work). Loopback by default; anywhere else without --token gets a loud warning, since
// anyone who can reach the port could then browse the library.
import ArgumentParser
import COpenBLASCore
import Foundation
import Logging
import LookalikeEngine
import LookalikeLibrary
import LookalikeServer

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the web app and the HTTP API (browse, click to search, random, upload, duplicates).",
        discussion: """
            Open http://HOST:PORT/ in a browser; the API is described at /openapi.json. The server \
            follows the library: what `lookalike index` adds, changes or deletes is searchable within \
            a second or two, without a restart. Stop it with Ctrl-C (SIGINT) or SIGTERM.
            Beyond loopback, paths are shown relative to the library's folders and GPS positions are \
            hidden (unless --show-private), and ?url= searches refuse loopback, private and \
            link-local addresses (unless --allow-private-urls).
            """)

    @OptionGroup var database: DatabaseOption

    @Option(help: "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port, printed at start).")
    var port = 8080

    @Option(help: "Require this token for every /api route (Authorization: Bearer, or log in at /login). Also $LOOKALIKE_TOKEN.")
    var token: String?

    @Flag(help: "Show absolute paths and GPS positions.")
    var showPrivate = false

    @Flag(help: "Allow ?url= searches of loopback, private and link-local addresses.")
    var allowPrivateUrls = false

    @Option(help: "Largest upload, in MB.")
    var maxUploadMb = 20

    @Option(help: "Largest k a search may ask for (at most \(ServerConfiguration.kCeiling)).")
    var maxK = 100

    @Option(help: "Weights file (default: $LOOKALIKE_MODEL or models/efficientnet-lite0.lkw).")
    var model: String?

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be from 0 to 65535") }
        guard (1...ServerConfiguration.kCeiling).contains(maxK) else {
            throw ValidationError("--max-k must be from 1 to \(ServerConfiguration.kCeiling)")
        }
        guard (1...1024).contains(maxUploadMb) else { throw ValidationError("--max-upload-mb must be from 1 to 1024") }
        if let token, token.count < 8 { throw ValidationError("--token must be at least 8 characters") }
    }

    func run() async throws {
        var settings = ServerConfiguration()
        settings.host = host
        settings.port = port
        settings.token = token ?? ProcessInfo.processInfo.environment["LOOKALIKE_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        settings.showPrivate = showPrivate
        settings.allowPrivateURLs = allowPrivateUrls
        settings.maxUploadBytes = maxUploadMb * 1024 * 1024
        settings.maxK = maxK
        if !settings.isLoopback && settings.token == nil {
            Console.error("""
                WARNING: serving on \(host) without --token: anyone who can reach port \(port) can browse \
                and search this library. Pass --token SECRET (or set LOOKALIKE_TOKEN) to require it.
                """)
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "lookalike.serve")
        let catalogue = try Catalogue(path: database.db, mustExist: true)
        let weights = model.map { URL(fileURLWithPath: $0) }
        // One OpenBLAS thread per product: the batcher runs a batch per core already.
        lk_openblas_set_threads(1)
        let services = try ServerServices(catalogue: catalogue, configuration: settings, logger: logger) {
            try Embedder(weightsURL: weights)
        }
        let images = services.library.count
        try await LookalikeServer.run(services: services) { host, port in
            let shown = host.contains(":") ? "[\(host)]" : host
            print("lookalike: serving \(images) images from \(database.db) at http://\(shown):\(port)/ (Ctrl-C to stop)")
            fflush(nil)
        }
        print("lookalike: stopped")
    }
}
