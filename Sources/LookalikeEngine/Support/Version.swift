// The product's version, in one place: `lookalike --version`, /api/stats and the Debian package
// (scripts/build_deb.sh reads the string below) all take it from here.
public enum LookalikeVersion {
    public static let string = "0.9.0"
}
