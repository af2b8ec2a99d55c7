package mongodb

import (
	"context"
	"errors"

	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/x/mongo/driver"
)

// isConnectionError reports errors of the connection rather than of a
// command: the runner retries them.
func isConnectionError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, mongo.ErrClientDisconnected) || mongo.IsNetworkError(err) || mongo.IsTimeout(err)
}

// dataErrorCodes are server error codes that refuse a document for what
// it holds; retrying cannot help.
var dataErrorCodes = map[int]bool{
	2:     true, // BadValue (FerretDB: "$" or "." in a key, nested arrays, infinities)
	9:     true, // FailedToParse
	14:    true, // TypeMismatch
	15:    true, // Overflow
	16:    true, // InvalidLength
	22:    true, // InvalidBSON
	52:    true, // DollarPrefixedFieldName
	53:    true, // InvalidIdField
	55:    true, // InvalidDBRef
	56:    true, // EmptyFieldName
	57:    true, // DottedFieldName
	66:    true, // ImmutableField
	73:    true, // InvalidNamespace (collection name)
	121:   true, // DocumentValidationFailure (a $jsonSchema validator)
	10334: true, // BSONObjectTooLarge
	11000: true, // DuplicateKey on a unique index other than _id
	17280: true, // KeyTooLong
	17419: true, // document grew too large
	17420: true, // document grew too large
}

// isRejection reports whether err refuses a document for good.
func isRejection(err error) bool {
	if errors.Is(err, driver.ErrDocumentTooLarge) {
		return true
	}
	if isConnectionError(err) {
		return false
	}
	var le mongo.LabeledError
	if errors.As(err, &le) && (le.HasErrorLabel("TransientTransactionError") || le.HasErrorLabel("RetryableWriteError")) {
		return false
	}
	var we mongo.WriteException
	if errors.As(err, &we) {
		return we.WriteConcernError == nil && anyDataError(we.WriteErrors)
	}
	var bwe mongo.BulkWriteException
	if errors.As(err, &bwe) {
		if bwe.WriteConcernError != nil {
			return false
		}
		errs := make(mongo.WriteErrors, len(bwe.WriteErrors))
		for i, e := range bwe.WriteErrors {
			errs[i] = e.WriteError
		}
		return anyDataError(errs)
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) {
		return dataErrorCodes[int(ce.Code)]
	}
	return false
}

func anyDataError(errs mongo.WriteErrors) bool {
	for _, e := range errs {
		if dataErrorCodes[e.Code] {
			return true
		}
	}
	return false
}
