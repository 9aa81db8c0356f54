// LookalikeServer/: the HTTP side of Lookalike, on Hummingbird 2. `buildRouter` assembles routes
// (one controller per group in Controllers/: the page and its assets, images, search, the library's
// stats and duplicates, login), a request context (RequestContext.swift), cross-cutting middleware
// (Middleware/: one log line per request, token authentication, errors as JSON), and the API's
// answer shapes and request parsing (API/). Handlers stay thin: they parse, call LookalikeLibrary
// (search, paging, media, duplicates), and encode. The page's assets live in Assets/ and are embedded
// in the binary at build time, so the one executable serves everything. `ServerServices` holds the
// shared library objects; `LookalikeServer.run` binds, follows the catalogue's changes, and shuts
// down gracefully on SIGINT/SIGTERM.
import Foundation
import Hummingbird
import Logging
import LookalikeEngine
import LookalikeCatalogue
import LookalikeIndex
import LookalikeMilvus
import LookalikeSearch

public enum LookalikeServer {
    /// The router with every route and middleware; tests drive it through HummingbirdTesting.
    public static func buildRouter(services: ServerServices) -> Router<LookalikeRequestContext> {
        let router = Router(context: LookalikeRequestContext.self)
        router.addMiddleware {
            RequestLogMiddleware(logger: services.logger)
            ErrorMiddleware(logger: services.logger)
        }
        PageController(services: services).addRoutes(to: router)
        let api = router.group("api")
        if let token = services.configuration.token {
            api.add(middleware: TokenAuthMiddleware(token: token))
        }
        ImagesController(services: services).addRoutes(to: api.group("images"))
        SearchController(services: services).addRoutes(to: api)
        LibraryController(services: services).addRoutes(to: api)
        return router
    }

    public static func buildApplication(services: ServerServices,
                                        onRunning: @escaping @Sendable (String, Int) async -> Void = { _, _ in })
        -> some ApplicationProtocol {
        let configuration = services.configuration
        return Application(
            router: buildRouter(services: services),
            configuration: ApplicationConfiguration(address: .hostname(configuration.host, port: configuration.port),
                                                    serverName: "lookalike"),
            onServerRunning: { channel in
                await onRunning(configuration.host, channel.localAddress?.port ?? configuration.port)
            },
            logger: services.logger
        )
    }

    /// Serves until SIGINT or SIGTERM, following the catalogue meanwhile.
    public static func run(services: ServerServices, onRunning: @escaping @Sendable (String, Int) async -> Void) async throws {
        let logger = services.logger
        // A local library is followed (what `index` changes is served within a second or two); a
        // store is always current.
        let follower = services.local?.library.follow(every: services.configuration.refreshInterval) { error in
            logger.warning("library refresh failed: \(error)")
        }
        defer { follower?.cancel() }
        // Load the network now, in the background, so the first upload does not pay for it.
        let resolver = services.served.resolver
        Task.detached(priority: .utility) {
            do { _ = try resolver.engine() } catch { logger.warning("the network could not be loaded (uploads will fail): \(error)") }
        }
        // The default re-ranking's diffusion graph too (seconds at 10k images), off the requests.
        if let library = services.local?.library, Reranking.libraryDefault.diffusion > 0 {
            Task.detached(priority: .utility) {
                _ = try? library.diffusionGraph(neighbours: Reranking.libraryDefault.diffusion, over: library.augmented ?? library.store)
            }
        }
        let app = buildApplication(services: services, onRunning: onRunning)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
    }
}
