package version_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPackageDocs fails unless every package under internal/ and cmd/ has
// exactly one package doc comment: none leaves the package unexplained in
// go doc, and two or more make go doc concatenate them in file order.
// Test files do not count.
func TestPackageDocs(t *testing.T) {
	root := moduleRoot(t)
	docs := map[string][]string{} // package directory => files with a package doc
	for _, top := range []string{"internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if name := d.Name(); path != filepath.Join(root, top) && (name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				return err
			}
			for _, cg := range f.Comments {
				if cg.Pos() < f.Package && slices.ContainsFunc(cg.List, func(c *ast.Comment) bool { return c.Text == "//go:build ignore" }) {
					return nil // a generator or an example, not part of the package
				}
			}
			dir, _ := filepath.Rel(root, filepath.Dir(path))
			if _, ok := docs[dir]; !ok {
				docs[dir] = nil
			}
			if f.Doc != nil {
				docs[dir] = append(docs[dir], filepath.Base(path))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(docs) < 2 {
		t.Fatalf("found %d packages under %s; the walk is broken", len(docs), root)
	}
	for _, dir := range slices.Sorted(maps.Keys(docs)) {
		files := docs[dir]
		switch len(files) {
		case 1:
		case 0:
			t.Errorf("%s: no package doc comment; add one (// Package %s ...) to the file that best introduces it", dir, filepath.Base(dir))
		default:
			t.Errorf("%s: package doc comments in %d files (%s); keep exactly one", dir, len(files), strings.Join(files, ", "))
		}
	}
}

// moduleRoot returns the directory of go.mod, above the test's directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test directory")
		}
		dir = parent
	}
}
