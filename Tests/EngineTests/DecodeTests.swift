// DecodeTests: owns the tests of LookalikeEngine/Decode against the small committed fixtures in
// Fixtures/decode (made by scripts/make_decode_fixtures.py): every supported format decodes to
// 224x224 RGB with the expected colour, EXIF orientation, grey / CMYK / 16-bit / alpha / GIF /
// tiny / lying-extension inputs, the typed errors for broken inputs and bombs (with the file
// name in the description), in-memory decoding, sniffing, and concurrent decoding.
import Foundation
import Testing
import LookalikeEngine

private enum DecodeFixtures {
    static let folder: URL = {
        if let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil) {
            return url.appendingPathComponent("decode")
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent("decode")
    }()

    static func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
}

/// RGB at (row, col) of a decoded 224x224 image.
private func pixel(_ image: DecodedImage, _ row: Int, _ col: Int) -> (Int, Int, Int) {
    let i = (row * ImageDecoder.outputSize + col) * 3
    return (Int(image.pixels[i]), Int(image.pixels[i + 1]), Int(image.pixels[i + 2]))
}

/// Mean RGB over the whole image.
private func meanColour(_ image: DecodedImage) -> (Double, Double, Double) {
    var s = (0.0, 0.0, 0.0)
    for i in stride(from: 0, to: image.pixels.count, by: 3) {
        s.0 += Double(image.pixels[i]); s.1 += Double(image.pixels[i + 1]); s.2 += Double(image.pixels[i + 2])
    }
    let n = Double(image.pixels.count / 3)
    return (s.0 / n, s.1 / n, s.2 / n)
}

private func close(_ a: (Double, Double, Double), _ b: (Int, Int, Int), tolerance: Double) -> Bool {
    abs(a.0 - Double(b.0)) <= tolerance && abs(a.1 - Double(b.1)) <= tolerance && abs(a.2 - Double(b.2)) <= tolerance
}

private func close(_ a: (Int, Int, Int), _ b: (Int, Int, Int), tolerance: Int) -> Bool {
    abs(a.0 - b.0) <= tolerance && abs(a.1 - b.1) <= tolerance && abs(a.2 - b.2) <= tolerance
}

/// The DecodeError thrown by decoding `name`, or nil when it decoded.
private func decodeError(_ name: String) -> DecodeError? {
    do {
        _ = try ImageDecoder.decode(path: DecodeFixtures.path(name))
        return nil
    } catch {
        return error
    }
}

@Suite("Decode")
struct DecodeTests {
    @Test("each format decodes to 224x224 RGB with its colour",
          arguments: [
              ("red.jpg", (220, 30, 30)), ("green.png", (30, 200, 40)), ("blue.gif", (30, 40, 220)),
              ("yellow.webp", (230, 210, 20)), ("magenta.bmp", (200, 30, 200)), ("cyan.tiff", (20, 200, 210)),
          ])
    func formats(name: String, colour: (Int, Int, Int)) throws {
        let image = try ImageDecoder.decode(path: DecodeFixtures.path(name))
        #expect(image.pixels.count == 224 * 224 * 3)
        #expect(image.width == 48 && image.height == 32)
        let mean = meanColour(image)
        #expect(close(mean, colour, tolerance: 4), "\(name): mean \(mean), expected \(colour)")
    }

    @Test("EXIF orientation 6 swaps width/height and rotates clockwise")
    func orientation() throws {
        // stored 120x80: TL red, TR green, BL blue, BR white; displayed 80x120 rotated clockwise
        let image = try ImageDecoder.decode(path: DecodeFixtures.path("orient6.jpg"))
        #expect(image.width == 80 && image.height == 120)
        #expect(close(pixel(image, 20, 20), (0, 0, 255), tolerance: 12))      // top-left: blue
        #expect(close(pixel(image, 20, 204), (255, 0, 0), tolerance: 12))     // top-right: red
        #expect(close(pixel(image, 204, 20), (255, 255, 255), tolerance: 12)) // bottom-left: white
        #expect(close(pixel(image, 204, 204), (0, 255, 0), tolerance: 12))   // bottom-right: green
    }

    @Test("grayscale, CMYK and 16-bit inputs become 8-bit RGB",
          arguments: [
              ("gray.jpg", (90, 90, 90), 3.0), ("gray16.png", (156, 156, 156), 1.0),
              ("rgb16.png", (255, 128, 0), 1.0), ("cmyk.jpg", (255, 0, 0), 45.0),
          ])
    func colourModels(name: String, colour: (Int, Int, Int), tolerance: Double) throws {
        let image = try ImageDecoder.decode(path: DecodeFixtures.path(name))
        #expect(image.pixels.count == 224 * 224 * 3)
        let mean = meanColour(image)
        #expect(close(mean, colour, tolerance: tolerance), "\(name): mean \(mean), expected \(colour)")
    }

    @Test("CMYK JPEG is red-dominant")
    func cmykIsRed() throws {
        let (r, g, b) = meanColour(try ImageDecoder.decode(path: DecodeFixtures.path("cmyk.jpg")))
        #expect(r > 200 && g < 60 && b < 60)
    }

    @Test("transparent pixels are flattened on white")
    func alphaOnWhite() throws {
        // left half transparent (black underneath), right half opaque blue
        let image = try ImageDecoder.decode(path: DecodeFixtures.path("rgba.png"))
        #expect(pixel(image, 112, 10) == (255, 255, 255))
        #expect(pixel(image, 112, 214) == (0, 0, 255))
    }

    @Test("GIF animation: the first frame is used")
    func gifFirstFrame() throws {
        let image = try ImageDecoder.decode(path: DecodeFixtures.path("anim.gif"))
        #expect(close(meanColour(image), (250, 0, 0), tolerance: 3))
    }

    @Test("a 16x16 image is enlarged to the crop")
    func tiny() throws {
        let image = try ImageDecoder.decode(path: DecodeFixtures.path("tiny16.png"))
        #expect(image.width == 16 && image.height == 16)
        #expect(close(meanColour(image), (255, 128, 0), tolerance: 1))
    }

    @Test("a PNG named .jpg is decoded by its content")
    func lyingExtension() throws {
        let image = try ImageDecoder.decode(path: DecodeFixtures.path("lying_png.jpg"))
        #expect(close(meanColour(image), (30, 200, 40), tolerance: 1))
        #expect(ImageDecoder.sniff(path: DecodeFixtures.path("lying_png.jpg")))
    }

    @Test("a large photo (shrink-on-load) keeps its geometry: centre crop of a horizontal gradient")
    func largeGradient() throws {
        // 2048x1536, red rises 0->255 left to right, blue falls; resized to 341x256, crop 224
        let image = try ImageDecoder.decode(path: DecodeFixtures.path("large_gradient.jpg"))
        #expect(image.width == 2048 && image.height == 1536)
        // column c of the crop is column c+58 of the 341-wide resize, i.e. x = (c+58.5)*2048/341
        for col in [0, 112, 223] {
            let expectedRed = (Double(col) + 58.5) * 2048 / 341 / 2047 * 255
            let (r, g, b) = pixel(image, 112, col)
            #expect(abs(Double(r) - expectedRed) < 6, "col \(col): red \(r), expected \(expectedRed)")
            #expect(abs(g - 60) < 6)
            #expect(abs(Double(b) - (255 - expectedRed)) < 6)
        }
    }

    @Test("broken inputs throw a typed DecodeError naming the file",
          arguments: [
              ("zero.jpg", DecodeError.Reason.emptyFile),
              ("truncated.jpg", .truncated),
              ("garbage.jpg", .notAnImage),
              ("text.jpg", .notAnImage),
              ("missing-file.jpg", .notFound),
              ("bomb.png", .tooLarge(width: 12000, height: 12000)),
              ("bomb.bmp", .tooLarge(width: 20000, height: 20000)),
          ])
    func brokenInputs(name: String, reason: DecodeError.Reason) {
        let error = decodeError(name)
        #expect(error?.reason == reason, "\(name): \(String(describing: error))")
        #expect(error?.path == DecodeFixtures.path(name))
        #expect(error?.description.contains(name) == true)
    }

    @Test("error descriptions say why")
    func descriptions() {
        #expect(decodeError("truncated.jpg")?.description.hasSuffix("truncated.jpg: file is truncated") == true)
        #expect(decodeError("zero.jpg")?.description.contains("empty") == true)
        #expect(decodeError("bomb.png")?.description.contains("12000x12000") == true)
        #expect(decodeError("missing-file.jpg")?.description.contains("not found") == true)
    }

    @Test("a directory is unreadable, not a crash")
    func directory() {
        guard case .unreadable = decodeError("")?.reason else {
            Issue.record("expected .unreadable for a directory")
            return
        }
    }

    @Test("decode(data:name:) matches decoding the file, and reports errors with the name")
    func inMemory() throws {
        for name in ["red.jpg", "orient6.jpg", "rgba.png", "magenta.bmp", "yellow.webp", "cyan.tiff"] {
            let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: DecodeFixtures.path(name))))
            let fromMemory = try ImageDecoder.decode(data: bytes, name: name)
            let fromFile = try ImageDecoder.decode(path: DecodeFixtures.path(name))
            #expect(fromMemory.width == fromFile.width && fromMemory.height == fromFile.height)
            #expect(fromMemory.pixels == fromFile.pixels, "\(name)")
        }
        let truncated = try [UInt8](Data(contentsOf: URL(fileURLWithPath: DecodeFixtures.path("truncated.jpg"))))
        #expect(throws: DecodeError.self) { try ImageDecoder.decode(data: truncated, name: "upload.jpg") }
        do {
            _ = try ImageDecoder.decode(data: truncated, name: "upload.jpg")
        } catch {
            #expect(error.reason == .truncated)
            #expect(error.description.hasPrefix("upload.jpg:"))
        }
        do {
            _ = try ImageDecoder.decode(data: [], name: "")
            Issue.record("an empty buffer decoded")
        } catch {
            #expect(error.reason == .emptyFile)
            #expect(error.path == "<memory>")
        }
        do {
            _ = try ImageDecoder.decode(data: Array("hello".utf8), name: "q.txt")
            Issue.record("text decoded")
        } catch {
            #expect(error.reason == .notAnImage)
        }
    }

    @Test("sniff recognises images by content only")
    func sniffing() {
        for name in ["red.jpg", "green.png", "blue.gif", "yellow.webp", "magenta.bmp", "cyan.tiff", "lying_png.jpg"] {
            #expect(ImageDecoder.sniff(path: DecodeFixtures.path(name)), "\(name)")
        }
        for name in ["zero.jpg", "garbage.jpg", "text.jpg", "missing-file.jpg"] {
            #expect(!ImageDecoder.sniff(path: DecodeFixtures.path(name)), "\(name)")
        }
    }

    @Test("the same file decodes concurrently from several threads with identical results")
    func concurrent() async throws {
        let names = ["red.jpg", "orient6.jpg", "large_gradient.jpg", "rgba.png", "truncated.jpg"]
        var expected: [String: [UInt8]] = [:]
        for name in names where name != "truncated.jpg" {
            expected[name] = try ImageDecoder.decode(path: DecodeFixtures.path(name)).pixels
        }
        let reference = expected
        let failures = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    var bad = 0
                    for round in 0..<10 {
                        let name = names[(worker + round) % names.count]
                        do throws(DecodeError) {
                            let image = try ImageDecoder.decode(path: DecodeFixtures.path(name))
                            if image.pixels != reference[name] { bad += 1 }
                        } catch {
                            if name != "truncated.jpg" || error.reason != .truncated { bad += 1 }
                        }
                    }
                    return bad
                }
            }
            return await group.reduce(0, +)
        }
        #expect(failures == 0)
    }
}
