//! The engine over a small shape, case by case through one `check`.

use serde_json::json;

use super::*;

static PLAIN: Shape = Shape::Plain;
static STRING_MAP: Shape = Shape::Map(&PLAIN);
static PLATFORM: Shape = Shape::Struct(&[
    Field::new("Architecture", "architecture", &PLAIN),
    Field::new("OS", "os", &PLAIN),
    Field::new("Variant", "variant", &PLAIN),
]);
static DESCRIPTORS: Shape = Shape::List(&Shape::Struct(&[
    Field::new("MediaType", "mediaType", &PLAIN),
    Field::new("Digest", "digest", &PLAIN),
    Field::new("Annotations", "annotations", &STRING_MAP),
    Field::new("Platform", "platform", &PLATFORM),
]));
static IMAGES: Shape = Shape::Map(&Shape::Struct(&[
    Field::new("Architecture", "architecture", &PLAIN),
    Field::new("OS", "os", &PLAIN),
    Field::new("Config", "config", &PLAIN),
]));
static ROOT: Shape = Shape::Struct(&[
    Field::new("Name", "name", &PLAIN),
    Field::new(
        "Manifest",
        "manifest",
        &Shape::Struct(&[
            Field::new("SchemaVersion", "schemaVersion", &PLAIN),
            Field::new("MediaType", "mediaType", &PLAIN),
            Field::new("Manifests", "manifests", &DESCRIPTORS),
            Field::new("Annotations", "annotations", &STRING_MAP),
        ]),
    ),
    Field::new("Image", "image", &IMAGES),
]);

/// Keys out of the shapes' order, to see `json` put them back in it.
fn root() -> Data<'static> {
    let value = json!({
        "name": "r.example/app:1",
        "manifest": {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "schemaVersion": 2,
            "manifests": [
                {"digest": "sha256:aa", "mediaType": "m",
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"digest": "sha256:bb", "mediaType": "m",
                 "platform": {"variant": "v7", "os": "linux", "architecture": "arm"},
                 "annotations": {"k": "<&>"}},
            ],
            "annotations": {"b": "2", "a": "1"},
        },
        "image": {
            "linux/amd64": {"os": "linux", "architecture": "amd64",
                            "config": {"Env": ["A=1", "B=2"]}},
            "linux/arm/v7": {"os": "linux", "architecture": "arm", "config": {}},
        },
    });
    Data::new(value, &ROOT)
}

/// Render `template` over [`root`]: the text, or `error: … [hint: …]`.
fn check(template: &str, want: &str) {
    let got = match Template::parse(template).and_then(|t| t.render(&root())) {
        Ok(text) => text,
        Err(e) => match &e.hint {
            Some(h) => format!("error: {e}\nhint: {h}"),
            None => format!("error: {e}"),
        },
    };
    assert_eq!(got, want, "template {template:?}");
}

#[test]
fn renders() {
    let cases = [
        ("plain text", "plain text"),
        ("{{.Name}}", "r.example/app:1"),
        ("{{ .Manifest.SchemaVersion }}", "2"),
        ("{{json .Name}}", r#""r.example/app:1""#),
        (
            "{{range .Manifest.Manifests}}{{.Digest}} {{end}}",
            "sha256:aa sha256:bb ",
        ),
        (
            "{{range .Manifest.Manifests}}{{.Platform.OS}}/{{.Platform.Architecture}}\
             {{if .Platform.Variant}}/{{.Platform.Variant}}{{end}},{{end}}",
            "linux/amd64,linux/arm/v7,",
        ),
        (
            "{{range $i, $m := .Manifest.Manifests}}{{$i}}={{$m.Digest}};{{end}}",
            "0=sha256:aa;1=sha256:bb;",
        ),
        (
            "{{range $p, $img := .Image}}{{$p}}:{{$img.Architecture}} {{end}}",
            "linux/amd64:amd64 linux/arm/v7:arm ",
        ),
        ("{{range .Manifest.Annotations}}{{.}}{{end}}", "12"),
        ("{{.Manifest.Annotations}}", "map[a:1 b:2]"),
        ("{{.Manifest.Annotations.b}}", "2"),
        (
            r#"{{(index .Image "linux/amd64").Config.Env}}"#,
            "[A=1 B=2]",
        ),
        (
            r#"{{json (index .Image "linux/arm/v7")}}"#,
            "{\n  \"architecture\": \"arm\",\n  \"os\": \"linux\",\n  \"config\": {}\n}",
        ),
        (
            "{{json (index .Manifest.Manifests 1).Annotations}}",
            "{\n  \"k\": \"\\u003c\\u0026\\u003e\"\n}",
        ),
        (r#"{{json (index .Image "linux/s390x")}}"#, "null"),
        (
            "{{(index .Manifest.Manifests 0).Platform.Architecture}}",
            "amd64",
        ),
        ("{{.Manifest.Manifests | len}}", "2"),
        ("{{len .Image}}", "2"),
        (
            "{{if eq .Manifest.SchemaVersion 2}}v2{{else}}other{{end}}",
            "v2",
        ),
        (
            r#"{{if eq .Name "x"}}a{{else if eq .Name "y" "r.example/app:1"}}b{{else}}c{{end}}"#,
            "b",
        ),
        (
            "{{if not .Manifest.Annotations}}none{{else}}some{{end}}",
            "some",
        ),
        (
            "{{if and .Name (ne .Manifest.SchemaVersion 1)}}yes{{end}}",
            "yes",
        ),
        (
            r#"{{or (index .Manifest.Annotations "zz") "none"}}"#,
            "none",
        ),
        ("{{with .Manifest.Manifests}}{{len .}}{{end}}", "2"),
        (
            r#"{{range index .Image "linux/s390x"}}x{{else}}none{{end}}"#,
            "none",
        ),
        ("a  {{- .Manifest.SchemaVersion -}}  b", "a2b"),
        (
            "{{range .Manifest.Manifests -}}\n  {{.Digest}}\n{{end}}",
            "sha256:aa\nsha256:bb\n",
        ),
        ("{{/* a comment */}}x", "x"),
        (
            "{{$n := .Name}}{{range .Manifest.Manifests}}{{$n}}@{{.Digest}} {{end}}",
            "r.example/app:1@sha256:aa r.example/app:1@sha256:bb ",
        ),
        (
            "{{range .Manifest.Manifests}}{{$.Name}} {{end}}",
            "r.example/app:1 r.example/app:1 ",
        ),
        ("{{`raw \"q\"`}} {{\"a\\tb\"}}", "raw \"q\" a\tb"),
        ("{{true}} {{-3}}", "true -3"),
    ];
    for (template, want) in cases {
        check(template, want);
    }
}

#[test]
fn errors() {
    let functions = format!("hint: the functions are {}", FUNCTIONS.join(", "));
    let cases = [
        (
            "{{.Nope}}",
            "error: unknown field .Nope at line 1, column 3\n\
             hint: the fields here are .Name, .Manifest, .Image",
        ),
        (
            "x\n{{.Manifest.Nope}}",
            "error: unknown field .Nope at line 2, column 3\n\
             hint: the fields here are .SchemaVersion, .MediaType, .Manifests, .Annotations",
        ),
        (
            "{{range .Manifest.Manifests}}{{.Platform.Arch}}{{end}}",
            "error: unknown field .Arch at line 1, column 32\n\
             hint: the fields here are .Architecture, .OS, .Variant",
        ),
        (
            "{{.Name.X}}",
            "error: cannot read field .X of a string at line 1, column 3\n\
             hint: use `range` or `index` for the elements of a list",
        ),
        (
            "{{.Manifest}}",
            "error: cannot print a struct at line 1, column 3\n\
             hint: print its JSON form: {{json …}}",
        ),
        (
            "{{.Name}}{{end}}",
            "error: unexpected {{end}} at line 1, column 10",
        ),
        ("{{else}}", "error: unexpected {{else}} at line 1, column 1"),
        (
            "{{if .Name}}x",
            "error: {{if}} without {{end}} at line 1, column 1\nhint: end each {{if}} with {{end}}",
        ),
        (
            "{{range .Image}}x",
            "error: {{range}} without {{end}} at line 1, column 1\nhint: end each {{range}} with {{end}}",
        ),
        (
            "a{{.Name",
            "error: unclosed action: no }} at line 1, column 2",
        ),
        (
            "{{}}",
            "error: missing value in empty action at line 1, column 1",
        ),
        ("{{$x}}", "error: undefined variable $x at line 1, column 3"),
        (
            "{{.Name 1}}",
            "error: a value is not a function: it takes no arguments at line 1, column 9",
        ),
        (
            "{{json}}",
            "error: json takes 1 argument, got 0 at line 1, column 3",
        ),
        (
            "{{index .Manifest.Manifests 5}}",
            "error: index 5 out of range: the list has 2 at line 1, column 3",
        ),
        (
            "{{index .Manifest 0}}",
            "error: cannot index a struct at line 1, column 3\nhint: read its fields: .Field",
        ),
        (
            "{{range .Name}}{{end}}",
            "error: cannot range over a string at line 1, column 9",
        ),
        (
            "{{\"open}}",
            "error: unterminated quoted string at line 1, column 3",
        ),
        (
            "{{1.5}}",
            "error: bad number (integers only) at line 1, column 3",
        ),
    ];
    for (template, want) in cases {
        check(template, want);
    }
    check(
        "{{nope .Name}}",
        &format!("error: function \"nope\" not defined at line 1, column 3\n{functions}"),
    );
}
