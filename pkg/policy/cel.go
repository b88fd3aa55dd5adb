package policy

import (
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

// The variables a rule's match sees. Field names are the CEL names.
type celIdentity struct {
	Name    string           `cel:"name"`
	Source  string           `cel:"source"` // oidc | static | "" when unknown
	Subject string           `cel:"subject"`
	Issuer  string           `cel:"issuer"`
	Groups  []string         `cel:"groups"`
	Claims  *structpb.Struct `cel:"claims"` // a map in CEL
	Pod     celPod           `cel:"pod"`
}

type celPod struct {
	Namespace string            `cel:"namespace"`
	Name      string            `cel:"name"`
	UID       string            `cel:"uid"`
	Labels    map[string]string `cel:"labels"`
}

type celStatement struct {
	Kind          string   `cel:"kind"`
	Kinds         []string `cel:"kinds"`
	IsDDL         bool     `cel:"is_ddl"`
	Tables        []string `cel:"tables"` // read and written
	TablesRead    []string `cel:"tables_read"`
	TablesWritten []string `cel:"tables_written"`
	HasWhere      bool     `cel:"has_where"`
	HasLimit      bool     `cel:"has_limit"`
	IntoOutfile   bool     `cel:"into_outfile"`
	Functions     []string `cel:"functions"`
	DynamicSQL    bool     `cel:"dynamic_sql"`
	Routines      []string `cel:"routines"`
	AccountMgmt   bool     `cel:"account_management"`
	SetsGlobal    bool     `cel:"sets_global"`
	FileIO        bool     `cel:"file_io"`
	Overwrites    bool     `cel:"overwrites"`
	Count         int      `cel:"count"`
	Digest        string   `cel:"digest"`
	Parsed        bool     `cel:"parsed"`
	Error         string   `cel:"error"`
}

type celSession struct {
	ID         string `cel:"id"`
	DB         string `cel:"db"`
	User       string `cel:"user"`
	ClientAddr string `cel:"client_addr"`
	Command    string `cel:"command"`
}

func newCELEnv() (*cel.Env, error) {
	env, err := cel.NewEnv(
		ext.NativeTypes(ext.ParseStructTags(true), reflect.TypeFor[celIdentity](), reflect.TypeFor[celPod](), reflect.TypeFor[celStatement](), reflect.TypeFor[celSession]()),
		cel.Variable("identity", cel.ObjectType("policy.celIdentity")),
		cel.Variable("statement", cel.ObjectType("policy.celStatement")),
		cel.Variable("session", cel.ObjectType("policy.celSession")),
		ext.Strings(),
	)
	if err != nil {
		return nil, fmt.Errorf("create cel environment: %w", err)
	}
	return env, nil
}

func compileMatch(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, iss.Err()
	}
	if !ast.OutputType().IsExactType(cel.BoolType) && !ast.OutputType().IsExactType(cel.DynType) {
		return nil, fmt.Errorf("match must be a bool, is %s", ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	return prg, nil
}

func identityVars(id *record.Identity) *celIdentity {
	v := &celIdentity{Groups: []string{}, Claims: emptyClaims, Pod: celPod{Labels: map[string]string{}}}
	if id == nil {
		return v
	}
	v.Name, v.Source, v.Subject, v.Issuer = id.Name, id.Source, id.Subject, id.Issuer
	if id.Groups != nil {
		v.Groups = id.Groups
	}
	if len(id.Claims) > 0 {
		v.Claims = claimsStruct(id.Claims)
	}
	if id.Pod != nil {
		v.Pod.Namespace, v.Pod.Name, v.Pod.UID = id.Pod.Namespace, id.Pod.Name, id.Pod.UID
		if id.Pod.Labels != nil {
			v.Pod.Labels = id.Pod.Labels
		}
	}
	return v
}

// kinds is what `statement.kinds` lists: each statement's kind, then the
// kinds of what a PREPARE prepares and an EXECUTE runs.
func kinds(s *statement.Statement) []string {
	if len(s.InnerKinds) == 0 {
		return orEmpty(s.Kinds)
	}
	return append(slices.Clip(s.Kinds), s.InnerKinds...)
}

func statementVars(s *statement.Statement) *celStatement {
	if s == nil {
		s = &statement.Statement{Kind: statement.KindUnparsed, Err: "no statement"}
	}
	v := &celStatement{
		Kind: s.Kind, Kinds: kinds(s), IsDDL: s.IsDDL,
		TablesRead: orEmpty(s.TablesRead), TablesWritten: orEmpty(s.TablesWritten),
		HasWhere: s.HasWhere, HasLimit: s.HasLimit, IntoOutfile: s.IntoOutfile,
		Functions: orEmpty(s.Functions), DynamicSQL: s.DynamicSQL, Count: s.Count,
		Routines: orEmpty(s.Routines), AccountMgmt: s.AccountManagement, SetsGlobal: s.SetsGlobal, FileIO: s.FileIO, Overwrites: s.Overwrites,
		Digest: s.Digest, Parsed: s.Parsed, Error: s.Err,
	}
	switch {
	case len(s.TablesWritten) == 0:
		v.Tables = v.TablesRead
	case len(s.TablesRead) == 0:
		v.Tables = v.TablesWritten
	default:
		v.Tables = append(append(make([]string, 0, len(s.TablesRead)+len(s.TablesWritten)), s.TablesRead...), s.TablesWritten...)
	}
	return v
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

var emptyClaims = &structpb.Struct{}

// claimsStruct converts token claims for CEL, caching the last conversion:
// a session decides many statements with the same identity. The cache holds
// the map itself, so its address cannot be reused by another map while
// cached; claims of a verified identity are never modified.
func claimsStruct(claims map[string]any) *structpb.Struct {
	key := reflect.ValueOf(claims).UnsafePointer()
	if c := lastClaims.Load(); c != nil && reflect.ValueOf(c.claims).UnsafePointer() == key {
		return c.val
	}
	s, err := structpb.NewStruct(claims)
	if err != nil {
		// Claims that are not JSON values: keep the ones that convert.
		s = &structpb.Struct{Fields: map[string]*structpb.Value{}}
		for k, v := range claims {
			if pv, err := structpb.NewValue(v); err == nil {
				s.Fields[k] = pv
			}
		}
	}
	lastClaims.Store(&claimsCache{claims: claims, val: s})
	return s
}

type claimsCache struct {
	claims map[string]any
	val    *structpb.Struct
}

var lastClaims atomic.Pointer[claimsCache]
