package main

import "testing"

func TestPackageVersion(t *testing.T) {
	for _, tc := range []struct{ describe, want string }{
		{"v1.2.3", "1.2.3"},
		{"v1.2.3-dirty", "1.2.3+dirty"},
		{"v1.2.3-4-gabc1234", "1.2.3+git4.gabc1234"},
		{"v1.2.3-4-gabc1234-dirty", "1.2.3+git4.gabc1234+dirty"},
		{"v1.2.3-rc1", "1.2.3~rc1"},
		{"v1.2.3-rc.2-7-g0123abc", "1.2.3~rc.2+git7.g0123abc"},
		{"abc1234", "0.0.0~gitabc1234"},
		{"abc1234-dirty", "0.0.0~gitabc1234.dirty"},
	} {
		if got := packageVersion(tc.describe); got != tc.want {
			t.Errorf("packageVersion(%q) = %q, want %q", tc.describe, got, tc.want)
		}
	}
}
