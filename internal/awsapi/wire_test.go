package awsapi

import "testing"

// A body is exactly one JSON value: anything but white space after it is refused, a
// stray closing brace included (json.Decoder.More does not see one).
func TestDecodeJSONIsStrict(t *testing.T) {
	for body, ok := range map[string]bool{
		``:                   true,
		" \n":                true,
		`{"name":"a"}`:       true,
		"{\"name\":\"a\"}\n": true,
		`{"name":"a"}}`:      false,
		`{"name":"a"}]`:      false,
		`{"name":"a"}{}`:     false,
		`{"name":"a"} x`:     false,
		`{"name":`:           false,
	} {
		var v struct{ Name string }
		if err := DecodeJSON([]byte(body), &v); (err == nil) != ok {
			t.Errorf("%q: %v", body, err)
		}
	}
}
