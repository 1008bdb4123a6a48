package plugins

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"github.com/kadapt/kadapt/plugins/plan"
)

// ServeMethod runs a method declared as a plan.Method as a plugin process; a method's
// main calls it and nothing else:
//
//	func main() { plugins.ServeMethod(lora.Method) }
//
// A configuration the SDK cannot serve (see NewMethod) stops the process at start
// with the reason on stderr, before any handshake.
func ServeMethod[C any](m plan.Method[C]) {
	impl, err := NewMethod(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	Serve(impl)
}

// NewMethod is the Method that ServeMethod serves: its Description lists one
// hyperparameter per field of C, from the field's hp, help and default tags (or
// m.Default), and its Plan hands m.Plan the C that the values describe. It refuses a
// C with a field that has no hp or help tag, is unexported or embedded, has a type
// other than int, float64, bool, string and []string, or whose default does not
// parse or round-trip; the error names the field.
func NewMethod[C any](m plan.Method[C]) (Method, error) {
	t := &typed[C]{m: m}
	ct := reflect.TypeFor[C]()
	where := fmt.Sprintf("plugins: method %q: config %s", m.Name, ct)
	switch {
	case m.Name == "":
		return nil, fmt.Errorf("plugins: method of config %s has no Name", ct)
	case m.Version == "":
		return nil, fmt.Errorf("plugins: method %q has no Version", m.Name)
	case m.Plan == nil:
		return nil, fmt.Errorf("plugins: method %q has no Plan function", m.Name)
	case ct.Kind() != reflect.Struct:
		return nil, fmt.Errorf("%s: not a struct of hyperparameters", where)
	}
	t.desc = Description{Name: m.Name, Version: m.Version, Summary: m.Summary}
	def := reflect.ValueOf(m.Default)
	seen := map[string]string{}
	var problems []string
	for i := range ct.NumField() {
		sf := ct.Field(i)
		f, err := newField(sf, def.Field(i))
		if err == nil && seen[f.hp.Name] != "" {
			err = fmt.Errorf("hp name %q is taken by field %s too", f.hp.Name, seen[f.hp.Name])
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("field %s: %v", sf.Name, err))
			continue
		}
		seen[f.hp.Name] = sf.Name
		t.fields = append(t.fields, f)
		t.desc.Hyperparameters = append(t.desc.Hyperparameters, f.hp)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: %s", where, strings.Join(problems, "; "))
	}
	return t, nil
}

// typed is a plan.Method served through the untyped Method interface.
type typed[C any] struct {
	NoEvents
	m      plan.Method[C]
	desc   Description
	fields []field // in C's field order, which is also the Description's
}

func (t *typed[C]) Describe() Description {
	d := t.desc
	d.Hyperparameters = append([]Hyperparameter(nil), t.desc.Hyperparameters...)
	return d
}

func (t *typed[C]) Plan(bb plan.Backbone, hp Values) (plan.Plan, error) {
	c, err := t.config(hp)
	if err != nil {
		return plan.Plan{}, err
	}
	return t.m.Build(bb, c)
}

// config is the C whose fields hp's values set.
func (t *typed[C]) config(hp Values) (C, error) {
	var c C
	rv := reflect.ValueOf(&c).Elem()
	var problems []string
	for _, f := range t.fields {
		typ, s, ok := hp.lookup(f.hp.Name)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("hyperparameter %q has no value", f.hp.Name))
		case typ != f.hp.Type:
			problems = append(problems, fmt.Sprintf("hyperparameter %q is declared as %s here, not %s", f.hp.Name, typ, f.hp.Type))
		default:
			if err := f.codec.parse(s, rv.Field(f.index)); err != nil {
				problems = append(problems, fmt.Sprintf("hyperparameter %q: %v", f.hp.Name, err))
			}
		}
	}
	for _, name := range hp.names() {
		if !t.declares(name) {
			problems = append(problems, fmt.Sprintf("unknown hyperparameter %q", name))
		}
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("plugin %q: %s", t.m.Name, strings.Join(problems, "; "))
	}
	return c, nil
}

func (t *typed[C]) declares(name string) bool {
	for _, f := range t.fields {
		if f.hp.Name == name {
			return true
		}
	}
	return false
}

// field is one hyperparameter of a typed method's configuration.
type field struct {
	index int
	hp    Hyperparameter
	codec codec
}

// hpName keeps names plain enough for --hp NAME=VALUE, sweep files' keys and report
// filters (hp.NAME=VALUE).
var hpName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func newField(sf reflect.StructField, def reflect.Value) (field, error) {
	name, tagged := sf.Tag.Lookup("hp")
	switch {
	case sf.Anonymous:
		return field{}, errors.New("embedded fields are not hyperparameters; name each one")
	case !sf.IsExported():
		return field{}, errors.New("unexported, so the SDK cannot set it; export it")
	case !tagged:
		return field{}, fmt.Errorf(`no hp tag: every field is a hyperparameter, declared as %s %s `+"`"+`hp:"name" help:"what it does"`+"`", sf.Name, sf.Type)
	case !hpName.MatchString(name):
		return field{}, fmt.Errorf("hp name %q: want lower-case letters, digits and _, starting with a letter", name)
	}
	help := sf.Tag.Get("help")
	if strings.TrimSpace(help) == "" {
		return field{}, errors.New(`no help tag: say what the hyperparameter does in help:"..."`)
	}
	cd, ok := codecFor(sf.Type)
	if !ok {
		return field{}, fmt.Errorf("type %s is not a hyperparameter type (int, float64, bool, string or []string)", sf.Type)
	}
	if s, ok := sf.Tag.Lookup("default"); ok {
		if !def.IsZero() {
			return field{}, fmt.Errorf("default given twice: tag %q and %s in Default", s, cd.format(def))
		}
		def = reflect.New(sf.Type).Elem()
		if err := cd.parse(s, def); err != nil {
			return field{}, fmt.Errorf("default tag: %v", err)
		}
	}
	dflt := cd.format(def)
	// The default reaches the plugin again as a string: it must come back as itself.
	back := reflect.New(sf.Type).Elem()
	if err := cd.parse(dflt, back); err != nil || !sameValue(back, def) {
		return field{}, fmt.Errorf("default %#v does not survive the round trip through %q (a list element empty, padded or holding a comma?)", def.Interface(), dflt)
	}
	return field{index: sf.Index[0], hp: Hyperparameter{Name: name, Type: cd.typ, Default: dflt, Help: help}, codec: cd}, nil
}

// sameValue compares a value with its round trip; an empty list is the same as none.
func sameValue(a, b reflect.Value) bool {
	if a.Kind() == reflect.Slice && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// codec converts between a Go field and its hyperparameter's string.
type codec struct {
	typ    string // Hyperparameter.Type
	format func(v reflect.Value) string
	parse  func(s string, dst reflect.Value) error
}

// codecFor goes by kind, so named types (type Act string) work too.
func codecFor(t reflect.Type) (codec, bool) {
	invalid := func(s, typ string) error { return fmt.Errorf("%q is not a valid %s", s, typ) }
	switch t.Kind() {
	case reflect.Int:
		return codec{"int",
			func(v reflect.Value) string { return strconv.FormatInt(v.Int(), 10) },
			func(s string, dst reflect.Value) error {
				n, err := strconv.Atoi(s)
				if err != nil {
					return invalid(s, "int")
				}
				dst.SetInt(int64(n))
				return nil
			}}, true
	case reflect.Float64:
		return codec{"float",
			func(v reflect.Value) string { return strconv.FormatFloat(v.Float(), 'g', -1, 64) },
			func(s string, dst reflect.Value) error {
				f, err := strconv.ParseFloat(s, 64)
				if err != nil {
					return invalid(s, "float")
				}
				dst.SetFloat(f)
				return nil
			}}, true
	case reflect.Bool:
		return codec{"bool",
			func(v reflect.Value) string { return strconv.FormatBool(v.Bool()) },
			func(s string, dst reflect.Value) error {
				b, err := strconv.ParseBool(s)
				if err != nil {
					return invalid(s, "bool")
				}
				dst.SetBool(b)
				return nil
			}}, true
	case reflect.String:
		return codec{"string",
			func(v reflect.Value) string { return v.String() },
			func(s string, dst reflect.Value) error { dst.SetString(s); return nil }}, true
	case reflect.Slice:
		if t.Elem().Kind() != reflect.String {
			return codec{}, false
		}
		return codec{"string",
			func(v reflect.Value) string {
				parts := make([]string, v.Len())
				for i := range parts {
					parts[i] = v.Index(i).String()
				}
				return strings.Join(parts, ",")
			},
			func(s string, dst reflect.Value) error {
				parts := splitList(s)
				if len(parts) == 0 {
					dst.SetZero() // nil, as Values.List gives
					return nil
				}
				list := reflect.MakeSlice(dst.Type(), len(parts), len(parts))
				for i, p := range parts {
					list.Index(i).SetString(p)
				}
				dst.Set(list)
				return nil
			}}, true
	}
	return codec{}, false
}
